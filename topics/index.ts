/** The public door of `topics/`: the catalogue, the event envelope, provisioning and the Kafka client factory. */
export {
  DEFAULT_PARTITIONS,
  deadLetterTopic,
  type EventTopic,
  eventTopics,
  type MailboxTopic,
  mailboxTopics,
  type TopicRole,
  type TopicSpec,
  topicCatalogue,
  topicIn,
} from "./catalogue.ts";
export {
  CURRENT_SCHEMA_VERSION,
  decodeEnvelope,
  type Envelope,
  EnvelopeError,
  EnvelopeSchema,
  type EventSource,
  encodeEnvelope,
  type NewEnvelope,
  newEnvelope,
} from "./envelope.ts";
export { createKafka, type KafkaClientOptions, type KafkaLogger, pingKafka } from "./kafka.ts";
export { type ProvisionResult, provisionTopics, replicationFor, waitForTopics } from "./provision.ts";
