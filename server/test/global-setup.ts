import postgres from "postgres";
import { openDatabase } from "../../db/client.ts";

/**
 * Vitest global setup: create a fresh, migrated template database for this run on the real
 * Postgres (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres), and drop it
 * and every per-file clone afterwards. Test files clone it with `createTestDatabase()`.
 */
export default async function setup({
  provide,
}: {
  provide: (key: string, value: string) => void;
}) {
  const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const runId = `${Date.now().toString(36)}_${process.pid}`;
  const template = `haven_test_${runId}_tpl`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await dropAbandonedTestDatabases(admin);
  await admin.unsafe(`CREATE DATABASE "${template}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${template}`;
  const handle = await openDatabase({ url: url.toString(), maxConnections: 1 });
  await handle.migrate();
  await handle.close();
  provide("havenTemplateDb", template);
  provide("havenAdminUrl", adminUrl);
  provide("havenRunId", runId);
  return async () => {
    const clones = await admin<{ datname: string }[]>`
      SELECT datname FROM pg_database WHERE datname LIKE ${`haven_test_${runId}_%`}`;
    for (const { datname } of clones) {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await admin.end();
  };
}

/** Test runs killed before teardown leave clones behind; drop those of runs older than 6 hours. */
async function dropAbandonedTestDatabases(admin: postgres.Sql): Promise<void> {
  const stale = Date.now() - 6 * 60 * 60 * 1000;
  const rows = await admin<{ datname: string }[]>`
    SELECT datname FROM pg_database WHERE datname LIKE 'haven\_test\_%'`;
  for (const { datname } of rows) {
    const started = Number.parseInt(datname.split("_")[2] ?? "", 36);
    if (Number.isFinite(started) && started < stale) {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    havenTemplateDb: string;
    havenAdminUrl: string;
    havenRunId: string;
  }
}
