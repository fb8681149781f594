//! One behavioural suite every storage driver must pass (as distribution's
//! `testsuites.Driver`). Each driver's tests call [`run`]; test-only.

use bytes::Bytes;
use futures::TryStreamExt;

use super::{Storage, StorageError};

async fn read_all(s: &dyn Storage, path: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = s
        .get(path, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

/// Exercises every method of `s`, which must start empty.
pub(crate) async fn run(s: &dyn Storage) {
    // Missing objects.
    assert!(s.stat("a/b").await.unwrap_err().is_not_found());
    assert!(s.get_bytes("a/b").await.unwrap_err().is_not_found());
    assert!(s.list("a").await.unwrap().is_empty());
    s.delete("a/b").await.unwrap();

    // Unsafe paths are refused before any I/O.
    for p in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b"] {
        assert!(
            matches!(s.get_bytes(p).await, Err(StorageError::InvalidPath(_))),
            "{p}"
        );
    }

    // put_bytes replaces, stat and get agree.
    s.put_bytes("a/b", Bytes::from_static(b"one"))
        .await
        .unwrap();
    s.put_bytes("a/b", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert_eq!(s.stat("a/b").await.unwrap().size, 11);
    assert_eq!(&s.get_bytes("a/b").await.unwrap()[..], b"hello world");
    assert_eq!(read_all(s, "a/b", None).await, b"hello world");
    assert_eq!(read_all(s, "a/b", Some(6..11)).await, b"world");
    assert!(matches!(
        s.get("a/b", Some(5..12)).await.map(|_| ()),
        Err(StorageError::InvalidRange { .. })
    ));

    // A non-appending writer is invisible until commit; cancel leaves nothing.
    let mut w = s.writer("w/x", false).await.unwrap();
    w.write(Bytes::from_static(b"abc")).await.unwrap();
    assert!(s.stat("w/x").await.unwrap_err().is_not_found());
    w.cancel().await.unwrap();
    assert!(s.stat("w/x").await.unwrap_err().is_not_found());
    // Small and large writes keep their order.
    let mut w = s.writer("w/x", false).await.unwrap();
    let big = vec![7u8; 3 << 20];
    w.write(Bytes::from_static(b"go")).await.unwrap();
    w.write(Bytes::from(big.clone())).await.unwrap();
    w.write(Bytes::from_static(b"end")).await.unwrap();
    assert_eq!(w.size(), (3 << 20) + 5);
    w.commit().await.unwrap();
    let got = read_all(s, "w/x", None).await;
    assert_eq!(got.len(), (3 << 20) + 5);
    assert!(got.starts_with(b"go\x07") && got.ends_with(b"\x07end"));

    // An appending writer continues where the object ends.
    let mut w = s.writer("u/data", true).await.unwrap();
    w.write(Bytes::from_static(b"12")).await.unwrap();
    w.commit().await.unwrap();
    let mut w = s.writer("u/data", true).await.unwrap();
    assert_eq!(w.size(), 2);
    w.write(Bytes::from_static(b"34")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(&s.get_bytes("u/data").await.unwrap()[..], b"1234");

    // rename replaces the target.
    s.rename("u/data", "a/b").await.unwrap();
    assert_eq!(&s.get_bytes("a/b").await.unwrap()[..], b"1234");
    assert!(s.stat("u/data").await.unwrap_err().is_not_found());

    // list shows direct children only; delete removes subtrees.
    s.put_bytes("t/x/1", Bytes::new()).await.unwrap();
    s.put_bytes("t/y", Bytes::new()).await.unwrap();
    let mut names = s.list("t").await.unwrap();
    names.sort();
    assert_eq!(names, ["x", "y"]);
    // list_after: what list gives, after the given name, sorted.
    for n in ["0001", "0002", "0003"] {
        s.put_bytes(&format!("t/{n}"), Bytes::new()).await.unwrap();
    }
    assert_eq!(
        s.list_after("t", "0001").await.unwrap(),
        ["0002", "0003", "x", "y"]
    );
    assert_eq!(
        s.list_after("t", "").await.unwrap(),
        ["0001", "0002", "0003", "x", "y"]
    );
    assert!(s.list_after("none", "").await.unwrap().is_empty());
    // An object has no children (v1 files sit among repository directories).
    assert!(s.list("t/y").await.unwrap().is_empty());
    s.delete("t").await.unwrap();
    assert!(s.list("t").await.unwrap().is_empty());

    // A plain object goes with `delete` and with `delete_object`.
    s.put_bytes("p/one", Bytes::from_static(b"1"))
        .await
        .unwrap();
    s.put_bytes("p/two", Bytes::from_static(b"2"))
        .await
        .unwrap();
    s.delete("p/one").await.unwrap();
    s.delete_object("p/two").await.unwrap();
    s.delete_object("p/none").await.unwrap();
    assert!(s.stat("p/one").await.unwrap_err().is_not_found());
    assert!(s.stat("p/two").await.unwrap_err().is_not_found());

    // Appending at a known size, then publishing what was appended.
    assert!(s.appended_size("q/data").await.unwrap_err().is_not_found());
    let mut w = s.append_writer_at("q/data", 0).await.unwrap();
    w.write(Bytes::from_static(b"abc")).await.unwrap();
    w.commit().await.unwrap();
    let size = s.appended_size("q/data").await.unwrap();
    assert_eq!(size, 3);
    let mut w = s.append_writer_at("q/data", size).await.unwrap();
    w.write(Bytes::from_static(b"de")).await.unwrap();
    assert_eq!(w.size(), 5);
    w.commit().await.unwrap();
    assert_eq!(s.appended_size("q/data").await.unwrap(), 5);
    s.publish_appended("q/data", "q/blob").await.unwrap();
    assert_eq!(&s.get_bytes("q/blob").await.unwrap()[..], b"abcde");
    assert_eq!(read_all(s, "q/blob", Some(1..4)).await, b"bcd");
    s.delete("q").await.unwrap();
    assert!(s.list("q").await.unwrap().is_empty());
    batched(s).await;
}

/// The batched calls: results in input order, missing objects as single
/// calls report them (not found for `stat` and moves, nothing for
/// removals), and more items than one filesystem chunk.
async fn batched(s: &dyn Storage) {
    let n = 300;
    let names: Vec<String> = (0..n).map(|i| format!("m/{i:03}/data")).collect();
    for p in names.iter().step_by(2) {
        s.put_bytes(p, Bytes::from(p.clone())).await.unwrap();
    }
    let stats = s.stat_each(&names).await;
    for (i, r) in stats.iter().enumerate() {
        match r {
            Ok(m) if i % 2 == 0 => assert_eq!(m.size, names[i].len() as u64),
            Err(e) if i % 2 == 1 => assert!(e.is_not_found(), "{e}"),
            other => panic!("{i}: {other:?}"),
        }
    }
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (names[i].clone(), format!("trash/{i:03}")))
        .collect();
    let moved = s.rename_volatile_each(&pairs).await;
    for (i, r) in moved.iter().enumerate() {
        assert_eq!(r.is_ok(), i % 2 == 0, "{i}: {r:?}");
    }
    assert!(s.stat(&names[0]).await.unwrap_err().is_not_found());
    assert_eq!(
        &s.get_bytes("trash/000").await.unwrap()[..],
        names[0].as_bytes()
    );
    let trash: Vec<String> = pairs.into_iter().map(|(_, t)| t).collect();
    assert!(s.delete_each(&trash).await.is_empty());
    assert!(s.list("trash").await.unwrap().is_empty());
    assert!(s.stat("trash/000").await.unwrap_err().is_not_found());
    // The folder a removal empties goes (filesystem), so listings stay
    // clean; one with more in it stays.
    for p in ["k/gone/data", "k/keep/data", "k/keep/other"] {
        s.put_bytes(p, Bytes::new()).await.unwrap();
    }
    let both = ["k/gone/data".to_owned(), "k/keep/data".to_owned()];
    assert!(s.delete_each(&both).await.is_empty());
    assert_eq!(s.list("k").await.unwrap(), ["keep"]);
    assert_eq!(s.list("k/keep").await.unwrap(), ["other"]);
    s.delete("k").await.unwrap();
    s.delete("m").await.unwrap();
}
