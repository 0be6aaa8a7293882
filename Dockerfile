# fnplat/platform: the platform itself (`fnctl up`: gateway and controller in one process).
#
# Build it with scripts/build-platform-image.sh, not with a bare `docker build`: no registry and no
# PyPI are reachable from inside a build, so the script first builds wheels of fnplat and every
# runtime dependency on the host into build/platform-wheels/ (the only thing .dockerignore lets
# into the context), and this file installs only those (`pip install --no-index`). The host's CA
# bundle is never copied in. The wheels live only in the build stage, never in a layer of the image.
#
# Running it on one host:
#
#   sudo install -d -o 10001 -g 10001 /var/lib/fnplat      # once: the data dir, owned by the image's user
#   docker run -d --name fnplat --restart unless-stopped --stop-timeout 35 \
#     --network host --cap-add NET_ADMIN \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/lib/fnplat:/var/lib/fnplat \
#     fnplat/platform:latest
#
# Why each flag is needed:
# - The Docker socket: the platform starts, watches and removes the function containers (tasks)
#   and builds image functions. The process runs as the non-root user `fnplat` (uid 10001), so it
#   also needs the socket's group (--group-add). Whoever holds the socket is root on the host in
#   effect: treat this container as privileged.
# - The data dir at the SAME path on the host and in the container: tasks get their code as a bind
#   mount of <data dir>/code/..., and the Docker engine resolves bind-mount sources on the host.
#   Another path works the same way: `-e FNPLAT_DATA_DIR=/srv/fnplat -v /srv/fnplat:/srv/fnplat`.
# - --network host: the controller serves the Lambda Runtime API on the gateway address of the
#   task bridge it creates (FNPLAT_TASK_NETWORK, FNPLAT_TASK_SUBNET, default fnplat-tasks on
#   172.31.252.0/22); only a process in the host's network namespace can listen there.
#   With host networking the gateway listens on the host's loopback by default (`up`, FNPLAT_HOST
#   127.0.0.1); to serve other machines pass `up --host ADDRESS` (or -e FNPLAT_HOST=ADDRESS), and
#   preferably a certificate: -e FNPLAT_TLS_CERT=/path/cert.pem -e FNPLAT_TLS_KEY=/path/key.pem
#   (mounted read-only, readable by uid 10001) makes it serve HTTPS only.
# - --cap-add NET_ADMIN: the controller installs iptables chains of its own that keep tasks and
#   image builds from the host's services, link-local addresses (cloud metadata), private networks
#   and the metadata store (controller/netfilter.py), and removes them at shutdown. The image's
#   iptables (nft) carries CAP_NET_ADMIN as a file capability, so the non-root process can use it
#   when the container may; without it the platform refuses to start (FNPLAT_TASK_FIREWALL=false
#   turns the rules off, for unprivileged development only).
# - --stop-timeout: on SIGTERM the platform drains and removes its tasks before it exits, within
#   FNPLAT_SHUTDOWN_TIMEOUT (30 s); 35 s leaves the same 5 s margin `fnctl down` does.
#
# The admin API key is printed once to the container's log on first start and saved in
# <data dir>/admin-key (mode 0600, owned by uid 10001); the host's fnctl finds the endpoint and
# the key with `fnctl --data-dir /var/lib/fnplat ...` (as root or uid 10001: the data dir is 0700).
# The key that encrypts function environments is made on first start in <data dir>/secret.key;
# keep it with the data (a backup of the database without it cannot be read), or pass it as
# FNPLAT_SECRET_KEY / FNPLAT_SECRET_KEY_FILE.
# Settings come from FNPLAT_* variables (platform/fnplat/config.py), e.g. -e FNPLAT_PORT=8081.

# ---- shared: Debian's Python 3.11 on the local base image (built offline by scripts/build-images.sh)
FROM fnplat/debian:bookworm AS python
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# ---- build: a venv under /opt/fnplat (so PEP 668 does not apply), filled from the host's wheels only
FROM python AS build
# The classic builder leaves this stage behind as an untagged image on every build; the label lets
# scripts/build-platform-image.sh prune exactly those.
LABEL fnplat.stage="platform-build"
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY build/platform-wheels/ /wheels/
# pip and setuptools are needed only to install; the running platform never imports them.
RUN python3 -m venv /opt/fnplat \
 && /opt/fnplat/bin/pip install --no-cache-dir --no-index --find-links /wheels fnplat \
 && /opt/fnplat/bin/pip uninstall --yes --quiet pip setuptools \
 && /opt/fnplat/bin/fnctl --version

# ---- the image
FROM python
ARG FNPLAT_VERSION=0.1.0
LABEL org.opencontainers.image.title="fnplat" \
      org.opencontainers.image.description="Self-hosted, Lambda-compatible Function-as-a-Service on Docker: the one-host platform (fnctl up)" \
      org.opencontainers.image.version="${FNPLAT_VERSION}" \
      org.opencontainers.image.base.name="fnplat/debian:bookworm" \
      fnplat.component="platform"

# A fixed uid/gid so a host data dir can be prepared for it (install -d -o 10001 -g 10001 ...);
# it differs from the uid tasks run as (993, ControllerSettings.task_user). The platform keeps its
# data dir 0700 and gives unpacked code (bind-mounted into tasks) to the tasks' group 990, mode
# 0750/0640: the user is a member of that group so that it may.
RUN groupadd --system --gid 10001 fnplat \
 && groupadd --system --gid 990 fnplat-tasks \
 && useradd --system --uid 10001 --gid fnplat --groups fnplat-tasks --home-dir /var/lib/fnplat \
      --no-create-home --shell /usr/sbin/nologin fnplat \
 && install -d -o fnplat -g fnplat -m 0700 /var/lib/fnplat

# The task firewall's iptables (see --cap-add NET_ADMIN above): the nft variant, as Docker's own
# rules on Debian bookworm, with CAP_NET_ADMIN as a file capability (setcap is not kept).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables libcap2-bin \
 && update-alternatives --set iptables /usr/sbin/iptables-nft \
 && setcap cap_net_admin+ep "$(readlink -f /usr/sbin/iptables-nft)" \
 && apt-get purge -y libcap2-bin \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

COPY --from=build /opt/fnplat /opt/fnplat

ENV PATH=/opt/fnplat/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    FNPLAT_DATA_DIR=/var/lib/fnplat \
    HOME=/var/lib/fnplat \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

USER fnplat
WORKDIR /var/lib/fnplat
VOLUME ["/var/lib/fnplat"]
EXPOSE 8080

# Healthy once the gateway answers /healthz at the address `fnctl up` wrote to <data dir>/endpoint
# after it started listening, so it follows --host/--port/FNPLAT_PORT (a wildcard address is
# reached through loopback) and https. The probe checks liveness of its own process, not the
# certificate, so it does not verify it. No curl in the image: Python's urllib does it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request as r; u = open(os.path.join(os.environ.get('FNPLAT_DATA_DIR', '/var/lib/fnplat'), 'endpoint')).read().strip().replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:'); c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE; r.urlopen(u + '/healthz', timeout=4, context=c)"]

ENTRYPOINT ["fnctl"]
# Loopback unless --host or FNPLAT_HOST says otherwise (with --network host, that is the host's).
CMD ["up"]
