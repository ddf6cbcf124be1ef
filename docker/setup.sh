# shellcheck shell=sh
# Exports the variables compose.yaml reads. Source it from the repository root, then start compose:
#   . docker/setup.sh && docker compose up --build                         # CPU image
#   export VLM_DEVICE=GPU && . docker/setup.sh && docker compose up --build   # Intel GPU image
# A variable that is already set keeps its value.

export VLM_DEVICE="${VLM_DEVICE:-CPU}"
case "$VLM_DEVICE" in
    *GPU*)
        # The GPU image (compose.gpu.yaml over compose.yaml), int4 weights for conversions, and the
        # group of the host's GPU render nodes, which the container's user must be in.
        export COMPOSE_FILE="${COMPOSE_FILE:-compose.yaml:compose.gpu.yaml}"
        export VLM_COMPRESSION_WEIGHT_FORMAT="${VLM_COMPRESSION_WEIGHT_FORMAT:-int4}"
        if [ -z "${RENDER_GID:-}" ] && [ -e /dev/dri/renderD128 ]; then
            RENDER_GID="$(stat -c %g /dev/dri/renderD128)"
            export RENDER_GID
        fi
        ;;
esac
export VLM_COMPRESSION_WEIGHT_FORMAT="${VLM_COMPRESSION_WEIGHT_FORMAT:-int8}"
export VLM_SERVICE_PORT="${VLM_SERVICE_PORT:-9764}"
# Published on this machine only; 0.0.0.0 opens the port to the network (set VLM_API_KEYS then).
export VLM_HOST_BIND="${VLM_HOST_BIND:-127.0.0.1}"

# No default: unset (or empty), the server serves models.yaml's default model and samples without a
# fixed seed.
if [ -n "${VLM_MODEL_NAME:-}" ]; then export VLM_MODEL_NAME; else unset VLM_MODEL_NAME; fi
if [ -n "${VLM_SEED:-}" ]; then export VLM_SEED; else unset VLM_SEED; fi

# Image name: ${REGISTRY_URL}${PROJECT_NAME}vlm-router:${TAG}, each prefix ending in "/".
if [ -n "${REGISTRY_URL:-}" ]; then export REGISTRY_URL="${REGISTRY_URL%/}/"; fi
if [ -n "${PROJECT_NAME:-}" ]; then export PROJECT_NAME="${PROJECT_NAME%/}/"; fi
export TAG="${TAG:-latest}"

# Proxies that are set reach the build and the container (compose passes both spellings).
if [ -n "${http_proxy:-}" ]; then export http_proxy; fi
if [ -n "${https_proxy:-}" ]; then export https_proxy; fi
if [ -n "${no_proxy:-}" ]; then export no_proxy; fi
if [ -n "${HTTP_PROXY:-}" ]; then export HTTP_PROXY; fi
if [ -n "${HTTPS_PROXY:-}" ]; then export HTTPS_PROXY; fi
if [ -n "${NO_PROXY:-}" ]; then export NO_PROXY; fi
