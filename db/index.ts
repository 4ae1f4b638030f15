/** The public door of `db/`: the schema, opening the database, and migrating it. */
export {
  connectionOptions,
  type Database,
  type DatabaseOptions,
  type Db,
  openDatabase,
  pingDatabase,
} from "./client.ts";
export { ensureDatabase, MIGRATIONS_FOLDER, migrateDatabase } from "./migrate.ts";
export * as schema from "./schema.ts";
