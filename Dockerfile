# The qruntime server in a container. Build and run it (see README, "Deployment"):
#
#   docker build -t qruntime .
#   docker run --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
#     --security-opt apparmor=unconfined -p 127.0.0.1:8000:8000 \
#     -v qruntime-data:/var/lib/qruntime qruntime
#
# or `docker compose -f deploy/compose.yaml up` for the server with PostgreSQL.
#
# Why those options: every job runs in a sandbox (README, "Security") that the server
# builds with Linux namespaces (mount, PID, IPC, network, UTS), mounts, pivot_root and
# a uid of its own per job. Building it takes CAP_SYS_ADMIN (without it every job fails
# at once: "the sandbox cannot be set up here"), and Docker's default seccomp and
# AppArmor profiles stand in the way of those system calls (unshare, mount, pivot_root)
# in containers; each job then installs qruntime's own seccomp filter, so jobs stay
# filtered. This image has not been built or run where qruntime is tested (base images
# cannot be pulled there): README, "Deployment", says what is tested instead.
#
# The server runs as root in the container so that it can give each job its own uid
# (61000-61999) and PID namespace. Everything it runs from is owned by root and
# read-only to the jobs; the jobs themselves never run as root. To run the server
# without root, add `--user qruntime`: its jobs then get a user namespace instead of a
# uid of their own, and no PID namespace or /proc (the weaker mode the README
# describes). It still needs the seccomp and AppArmor options (Docker's default seccomp
# profile refuses unshare without CAP_SYS_ADMIN), and a host that allows unprivileged
# user namespaces.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install qruntime and its dependencies into a virtual environment ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The same commands as the README's "Installing a server" (a test keeps them equal).
RUN python3 -m venv /opt/qruntime
RUN /opt/qruntime/bin/python -m pip install --upgrade pip
RUN /opt/qruntime/bin/python -m pip install .

# --- runtime: the environment alone, no build tools or sources ------------------------
FROM ${PYTHON_IMAGE}
# libseccomp2 compiles the jobs' seccomp filter (Debian's slim images have it; this
# keeps it there).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libseccomp2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/qruntime /opt/qruntime
# A user for running without root (see above) owns the data folder; as root the
# server uses it too.
RUN useradd --system --uid 10001 --home-dir /var/lib/qruntime --shell /usr/sbin/nologin qruntime \
    && install --directory --owner qruntime --group qruntime --mode 0700 /var/lib/qruntime
ENV PATH=/opt/qruntime/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    QRUNTIME_DB=sqlite:////var/lib/qruntime/qruntime.db
VOLUME ["/var/lib/qruntime"]
# /mnt, /media and /srv stay empty: the sandbox builds each job's root on one of them.
WORKDIR /var/lib/qruntime
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# SIGTERM (docker stop) drains: running jobs get drain_seconds to finish, the rest run
# again after the restart. Give `docker stop --time` (compose: stop_grace_period) more.
STOPSIGNAL SIGTERM
CMD ["qruntime", "serve", "--host", "0.0.0.0", "--port", "8000"]
