import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { Keyring } from "../crypto/keyring.ts";
import { PhiCrypto } from "../crypto/phi.ts";

export interface TestDatabase {
  handle: DatabaseHandle;
  url: string;
  name: string;
  /** Drop the clone (call in afterAll). */
  drop(): Promise<void>;
}

/**
 * A fresh migrated Postgres database for one test file, cloned from this run's template, so test
 * files run in parallel without sharing rows.
 */
export async function createTestDatabase(
  options: { maxConnections?: number } = {},
): Promise<TestDatabase> {
  const adminUrl = inject("havenAdminUrl");
  const template = inject("havenTemplateDb");
  const name = `haven_test_${inject("havenRunId")}_${randomBytes(5).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    // CREATE DATABASE … TEMPLATE needs the template idle; retry while a sibling clones it.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        break;
      } catch (err) {
        if (attempt > 50 || (err as { code?: string }).code !== "55006") throw err;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({
    url: url.toString(),
    maxConnections: options.maxConnections ?? 5,
  });
  return {
    handle,
    url: url.toString(),
    name,
    drop: async () => {
      await handle.close();
      const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await a.end();
    },
  };
}

/** A keyring with random keys, for tests. */
export function testKeyring(activeKeyId = "test1"): Keyring {
  return new Keyring({
    phiKeys: [{ id: activeKeyId, key: randomBytes(32) }],
    blindIndexKey: randomBytes(32),
  });
}

export function testCrypto(): PhiCrypto {
  return new PhiCrypto(testKeyring());
}
