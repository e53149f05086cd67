#!/bin/bash
# What the official image's kafka-broker-api-versions.sh runs (the compose health check).
exec java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties \
  -cp "/opt/kafka/libs/*" kafka.admin.BrokerApiVersionsCommand "$@"
