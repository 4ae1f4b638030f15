/**
 * Brings up everything Pitstop depends on, in order, for `npm start` and the test suite alike:
 * Postgres/Redis/NATS checked (and started when installed but stopped), the project's own Kafka started or
 * reused, the database created and migrated, the topic catalogue provisioned. With `manageInfra` off
 * (PITSTOP_MANAGE_INFRA=false, e.g. under docker compose) nothing is started: everything is only checked,
 * then migrated and provisioned.
 */
import type { Config } from "../config.ts";
import { ensureDatabase, migrateDatabase } from "../db/index.ts";
import { createKafka, type ProvisionResult, provisionTopics, topicCatalogue } from "../topics/index.ts";
import { InfraError } from "./infra-error.ts";
import { clusterLayout, startKafka, waitForBrokers } from "./kafka-cluster.ts";
import { ensureServices, type ServiceStatus, serviceSpecs } from "./services.ts";

export { InfraError } from "./infra-error.ts";

export interface InfraReport {
  services: ServiceStatus[];
  kafka: { brokers: string[]; started: number[] };
  database: { created: boolean; migrations: number };
  topics: ProvisionResult;
}

export async function ensureInfra(config: Config): Promise<InfraReport> {
  const urls = { postgres: config.postgres.url, redis: config.redis.url, nats: config.nats.servers };
  const services = await ensureServices(serviceSpecs(urls), { start: config.manageInfra });
  const kafka = await ensureKafka(config);
  const database = await withInfraError("Postgres", async () => {
    const { created } = await ensureDatabase(config.postgres.url);
    const { applied } = await migrateDatabase(config.postgres.url);
    return { created, migrations: applied };
  });
  const topics = await withInfraError("Kafka", () =>
    provisionTopics(
      createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-provision` }),
      topicCatalogue(undefined, config.namespace),
    ),
  );
  return { services, kafka, database, topics };
}

/** Starts the project's cluster when the brokers are its own; otherwise waits for the configured ones. */
async function ensureKafka(config: Config): Promise<InfraReport["kafka"]> {
  const layout = clusterLayout(config.kafka.clusterSize);
  const ours = layout.brokers.join(",") === config.kafka.brokers.join(",");
  if (config.manageInfra && ours) {
    const result = await startKafka(config.kafka.clusterSize);
    return { brokers: result.brokers, started: result.started };
  }
  await waitForBrokers({ ...layout, brokers: config.kafka.brokers, nodes: [] }, 30_000);
  return { brokers: config.kafka.brokers, started: [] };
}

async function withInfraError<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof InfraError) throw error;
    throw new InfraError(
      `${what} setup failed: ${error instanceof Error ? error.message : String(error)}`,
      true,
      {
        cause: error,
      },
    );
  }
}
