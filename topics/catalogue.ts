/**
 * Every topic Pitstop uses, in one list. Provisioning (provision.ts) creates what is missing at start.
 *
 * - event topics: the seed's catalogue (facts that happened, read by reactors and sagas);
 * - mailbox topics: commands to one actor kind, keyed by actor id, so one actor's messages stay in order;
 * - dead-letter topics: `<topic>.dlt` for every topic a consumer reads, where records that could not be
 *   handled go with headers saying where they came from and why (see docs/runtime.md once it exists).
 */

/** The seed's partition count: 10 per topic, so up to 10 hosts share each topic's work. */
export const DEFAULT_PARTITIONS = 10;

export type TopicRole = "events" | "mailbox" | "dead-letter";

export interface TopicSpec {
  name: string;
  role: TopicRole;
  partitions: number;
  /** Extra topic-level configs (retention, compaction...). */
  config?: Record<string, string>;
}

export const eventTopics = [
  "booking-events",
  "repair-events",
  "payment-events",
  "notification-events",
  "compensation-events",
] as const;

export const mailboxTopics = [
  "booking-mailbox",
  "slot-mailbox",
  "repair-mailbox",
  "invoice-mailbox",
  "job-saga-mailbox",
] as const;

export type EventTopic = (typeof eventTopics)[number];
export type MailboxTopic = (typeof mailboxTopics)[number];

/** A topic's name in a namespace: the name itself in the real deployment, `<namespace>.<name>` in a test's. */
export function topicIn(namespace: string, name: string): string {
  return namespace ? `${namespace}.${name}` : name;
}

/** The dead-letter topic of a topic. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dlt`;
}

/** The whole catalogue: events and mailboxes, each with its dead-letter topic. */
export function topicCatalogue(partitions = DEFAULT_PARTITIONS, namespace = ""): TopicSpec[] {
  const sources: TopicSpec[] = [
    ...eventTopics.map((name) => ({ name: topicIn(namespace, name), role: "events" as const, partitions })),
    ...mailboxTopics.map((name) => ({
      name: topicIn(namespace, name),
      role: "mailbox" as const,
      partitions,
    })),
  ];
  const deadLetters = sources.map((source) => ({
    name: deadLetterTopic(source.name),
    role: "dead-letter" as const,
    partitions,
    // Dead letters wait for an operator: keep them for 30 days rather than the broker's 7.
    config: { "retention.ms": String(30 * 24 * 3600 * 1000) },
  }));
  return [...sources, ...deadLetters];
}
