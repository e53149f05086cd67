# syntax=docker/dockerfile:1
#
# kafka-onnx-scorer image. Stages:
#   build      all dependencies (dev included), compiles src/ -> dist/ with tsc
#   prod-deps  production dependencies only, no lifecycle scripts
#   loadgen    the build stage plus scripts/ and schemas/: the load generator (scripts/produce.ts)
#   runtime    (default, last) dist/ + production node_modules + schemas/ + models/, non-root
#
#   docker build -t kafka-onnx-scorer .                    # the scorer
#   docker build --target loadgen -t kafka-onnx-scorer-loadgen .
#
# Exit codes of the scorer (src/main.ts): 0 clean stop, 1 crash or drain timeout, 2 bad configuration.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Dependencies first, so this layer is reused until the lockfile changes. --ignore-scripts: the
# root `prepare` script runs tsc and needs src/, which is not copied yet; the build runs below.
# .npmrc keeps onnxruntime-node's optional GPU download off (its CPU binaries ship in the package).
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# esbuild's postinstall (skipped above) is only needed by tsx, i.e. by the loadgen stage.
RUN npm rebuild esbuild && npm run build

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: `prepare` needs tsc (a devDependency); no production dependency needs its
# install script (onnxruntime-node's only downloads GPU binaries, protobufjs's only prints).
# onnxruntime-node ships prebuilt binaries for every OS (~290 MB): keep Linux only, and fail the
# build if the Linux binding is missing.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v*/darwin node_modules/onnxruntime-node/bin/napi-v*/win32 \
 && test -n "$(ls node_modules/onnxruntime-node/bin/napi-v*/linux/*/onnxruntime_binding.node)"

# ---------------------------------------------------------------------------------------------
# Load generator: needs tsx and the dev toolchain, so it is the build stage plus the scripts.
#   docker run --rm -e KAFKA_BROKERS=... -e SCHEMA_REGISTRY_URL=... kafka-onnx-scorer-loadgen --count 100000 --rate 5000 --poison 0.01
FROM build AS loadgen
COPY schemas ./schemas
COPY scripts ./scripts
ENV NODE_ENV=development
USER node
ENTRYPOINT ["node", "--import", "tsx", "scripts/produce.ts"]
CMD ["--count", "100000", "--rate", "5000", "--poison", "0.01"]

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="kafka-onnx-scorer" \
      org.opencontainers.image.description="Exactly-once Kafka streaming inference with ONNX models" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    HTTP_PORT=8080
WORKDIR /app
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot/runAsUser (10001) can verify it.
RUN groupadd --system --gid 10001 scorer \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin scorer
# Everything below is owned by root and only readable by the scorer: the app cannot rewrite itself,
# and the root filesystem can be mounted read-only (it writes nothing but to stdout).
COPY package.json package-lock.json .npmrc ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY schemas ./schemas
# The reference models and the churn repository (MODEL_REPOSITORY=/app/models/churn); mount a
# volume on /app/models (and set MODEL_PATH or MODEL_REPOSITORY) to serve others.
COPY models/*.onnx models/*.manifest.json ./models/
COPY models/churn ./models/churn
USER 10001:10001
EXPOSE 8080
# src/main.ts drains on SIGTERM within SHUTDOWN_TIMEOUT_MS (default 25 s): give it longer than that
# (docker stop -t 40, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# Liveness only (/healthz); readiness (/readyz) is for traffic decisions, not for restarts.
# No curl in the slim image: Node 20's global fetch does the probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/cli.js"]
