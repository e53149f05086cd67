#!/bin/bash
# What the official image's kafka-topics.sh runs (Kafka 3.9: the tools module).
exec java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties \
  -cp "/opt/kafka/libs/*" org.apache.kafka.tools.TopicCommand "$@"
