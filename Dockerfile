# regconf as a container image: one static binary on an empty base, run the
# way docker-registry's image was (`docker run -p 5000:5000 -e SETTINGS_FLAVOR=…`).
#
# Build it with `bash scripts/build-image.sh [TAG]` (default regconf:latest):
# the script compiles the static binary and hands `docker build` a small
# context holding only
#   regconf       the binary (x86_64, statically linked)
#   rootfs/tmp/   empty, mode 1777: the dev flavor's search index goes there
#   storage/      empty: becomes /var/lib/registry, owned by the user below
# Nothing is pulled: `scratch` is built in, so it builds offline.
FROM scratch

# `rootfs/ /` keeps the folders' modes (a COPY of `rootfs/tmp/` would not).
COPY rootfs/ /
COPY --chown=65532:65532 storage/ /var/lib/registry/
COPY regconf /usr/local/bin/regconf

# The bundled flavors file (compiled in) is the configuration unless
# DOCKER_REGISTRY_CONFIG names a mounted file; every `_env:` variable of the
# flavors is read from the container's environment. STORAGE_PATH puts the
# local flavors' images in the volume; the binary's own default address stays
# loopback, the image's is every interface.
ENV REGISTRY_HOST=0.0.0.0 \
    REGISTRY_PORT=5000 \
    SETTINGS_FLAVOR=dev \
    STORAGE_PATH=/var/lib/registry

VOLUME /var/lib/registry
EXPOSE 5000
# No ./config.yml here, so the bundled file applies unless one is mounted.
WORKDIR /
# Not root; numeric, since the image has no /etc/passwd.
USER 65532:65532

# No shell in the image: the binary asks `serve` itself (GET /v2/).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/regconf", "healthcheck"]

# `serve` stops on SIGTERM (docker stop), finishing requests in flight.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/regconf"]
CMD ["serve"]
