/**
 * Preloaded once per `bun test` run (bunfig.toml): brings up Kafka and the services, creates and migrates the
 * test database, provisions topics, installs Debian's Chromium for the console's browser test when it is missing.
 * A machine without what the tests need fails here with one clear line.
 */
import { loadConfig } from "../config.ts";
import { ensureInfra, InfraError } from "../infra/index.ts";
import { ensureChromium } from "./chromium.ts";

const config = loadConfig();
if (config.env !== "test") throw new Error(`tests must run with NODE_ENV=test (got ${config.env})`);
try {
  await Promise.all([ensureInfra(config), ensureChromium()]);
} catch (error) {
  if (error instanceof InfraError) {
    console.error(`pitstop tests: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
