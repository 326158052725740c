#!/bin/sh
# One image, several roles. Usage: entrypoint.sh web|worker|realtime-worker|beat|migrate|<any command>
#   web     uvicorn (default) or daphne (ASGI_SERVER=daphne) on ${HOST:-0.0.0.0}:$PORT
#   worker  a Celery worker; serves its metrics on $CELERY_METRICS_PORT if set
#   realtime-worker  the worker of the "realtime" queue (publish_event): a solo pool
#   beat    Celery beat (run exactly one per deployment)
#   migrate apply database migrations, then exit
set -eu

# Multiprocess metrics files must not outlive the processes that wrote them.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
fi

role="${1:-web}"
case "$role" in
  web)
    shift || true
    # All of the process's threads on one CPU, moved off a CPU other processes keep busy:
    # they hand the GIL to each other a dozen times per API call, and across cores each
    # hand-over costs more (liveplatform/cpu_affinity.py, docs/benchmarks.md).
    export CPU_AFFINITY="${CPU_AFFINITY:-auto}"
    # uvicorn is the default: the benchmark (docs/benchmarks.md) measured it at 2.7x less
    # server CPU per delivered event than daphne at 3,000 sockets, and twice the sustained rate.
    if [ "${ASGI_SERVER:-uvicorn}" = "uvicorn" ]; then
      # uvicorn closes sockets with 1012 on SIGTERM by itself, then waits up to the drain time.
      # No per-message deflate (as in the benchmark): compressing each frame once per socket
      # took a fifth of the event loop in the 2,000-socket soak; our frames are small.
      # realtime.transport's protocol writes each fanned-out event as one frame encoded
      # once per process, not once per socket (docs/benchmarks.md).
      exec uvicorn liveplatform.asgi:application --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
        --ws realtime.transport:BroadcastWebSocketProtocol \
        --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" --lifespan off \
        --ws-per-message-deflate "${WS_PER_MESSAGE_DEFLATE:-false}" \
        --timeout-graceful-shutdown "${SHUTDOWN_DRAIN_SECONDS:-10}" --no-access-log "$@"
    fi
    # No daphne access log: nginx writes one (JSON, with the request id); daphne's is plain text.
    exec python -m liveplatform.daphne_server -b "${HOST:-0.0.0.0}" -p "${PORT:-8000}" --proxy-headers --access-log /dev/null \
      --websocket_timeout "${WEBSOCKET_TIMEOUT:-86400}" \
      --application-close-timeout 10 "$@" liveplatform.asgi:application
    ;;
  worker)
    shift || true
    exec celery -A liveplatform worker -l "${LOG_LEVEL:-INFO}" \
      --concurrency "${CELERY_CONCURRENCY:-4}" -n "worker@%h" "$@"
    ;;
  realtime-worker)
    shift || true
    # WARNING by default: three INFO lines per task at hundreds of tasks a second cost a
    # tenth of each task (docs/benchmarks.md).
    exec celery -A liveplatform worker -Q realtime --pool solo --concurrency 1 \
      -l "${REALTIME_WORKER_LOG_LEVEL:-WARNING}" -n "realtime@%h" "$@"
    ;;
  beat)
    shift || true
    exec celery -A liveplatform beat -l "${LOG_LEVEL:-INFO}" \
      -s "${VAR_DIR:-/app/var}/celerybeat-schedule" --pidfile= "$@"
    ;;
  migrate)
    shift || true
    exec python manage.py migrate --noinput "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
