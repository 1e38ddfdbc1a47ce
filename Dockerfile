# x15g in a container: `docker build -t x15g .` (or podman/buildah), then
#   docker run --rm -p 8000:8000 -v "$PWD/public:/srv/www:ro" x15g
# Serves /srv/www on port 8000 as an unprivileged user; options come as arguments or X15G_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what serving needs: the package and its runtime dependencies (no test or load-test extras).
WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY x15g ./x15g
COPY docs/x15g.1 ./docs/x15g.1
RUN pip install . && rm -rf /build

RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin x15g \
    && mkdir -p /srv/www && printf '<h1>x15g</h1>\n' > /srv/www/index.html
USER x15g
WORKDIR /srv/www

# In a container every address is "the outside": listen on all of them. The admin endpoints stay
# loopback-only (--admin-access), so /-/metrics is reachable from inside the container only.
ENV X15G_BIND=0.0.0.0:8000
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["x15g"]
CMD ["--root", "/srv/www"]
