import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../db/client.ts";
import { createCluster, runAsClusterUser, type ThrowawayCluster } from "./cluster.ts";

/**
 * Point-in-time recovery with pgBackRest (issue 15 §1, long mode): a loopback cluster (port 47040)
 * archiving WAL through `pgbackrest archive-push`, a full backup, writes, a recorded target time,
 * more writes, then `pgbackrest restore --type=time` to that target: the restored cluster holds
 * exactly the rows written before the target. The commands are the ones docs/operations.md
 * gives for production.
 */
const PORT = 47040;
const STANZA = "haven";
let cluster: ThrowawayCluster;
let conf: string;

const backrest = (...args: string[]) =>
  runAsClusterUser("pgbackrest", [`--config=${conf}`, `--stanza=${STANZA}`, ...args]);

beforeAll(async () => {
  // The work directory (and so the pgBackRest config path) is only known after initdb: archive
  // nothing until the config exists (no backup needs WAL from before it), then switch over.
  cluster = await createCluster({
    port: PORT,
    settings: {
      wal_level: "replica",
      archive_mode: "on",
      archive_command: "'/bin/true'",
      max_wal_senders: "3",
    },
  });
  conf = join(cluster.workDir, "pgbackrest.conf");
  const text = [
    "[global]",
    `repo1-path=${join(cluster.workDir, "repo")}`,
    "repo1-retention-full=2",
    `log-path=${cluster.workDir}`,
    `lock-path=${cluster.workDir}`,
    "log-level-console=warn",
    "log-level-file=info",
    "start-fast=y",
    "",
    `[${STANZA}]`,
    `pg1-path=${cluster.dataDir}`,
    `pg1-port=${PORT}`,
    `pg1-socket-path=${cluster.workDir}`,
    "pg1-user=postgres",
    "",
  ].join("\n");
  await runAsClusterUser("sh", ["-c", `cat > '${conf}' <<'EOF'\n${text}EOF`]);
  await cluster.psql(
    `ALTER SYSTEM SET archive_command = 'pgbackrest --config=${conf} --stanza=${STANZA} archive-push %p'`,
  );
  await cluster.psql("SELECT pg_reload_conf()");
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
});

async function count(): Promise<number> {
  return Number((await cluster.psql("SELECT count(*) FROM organizations", "haven")).trim());
}

async function addOrganizations(n: number, label: string): Promise<void> {
  await cluster.psql(
    `INSERT INTO organizations (id, name) SELECT gen_random_uuid(), '${label} ' || g FROM generate_series(1, ${n}) g`,
    "haven",
  );
}

describe("pgBackRest point-in-time recovery", () => {
  it("restores to a timestamp between a full backup and later writes", async () => {
    await backrest("stanza-create");
    await backrest("check");
    await cluster.psql("CREATE DATABASE haven");
    const handle = await openDatabase({ url: cluster.url("haven"), maxConnections: 1 });
    await handle.migrate();
    await handle.close();

    await addOrganizations(100, "before backup");
    const t0 = performance.now();
    await backrest("--type=full", "backup");
    const backupMs = Math.round(performance.now() - t0);
    const atBackup = await count();

    await addOrganizations(50, "after backup, before target");
    const beforeTarget = await count();
    await new Promise((r) => setTimeout(r, 1100));
    const target = (await cluster.psql("SELECT now()::text")).trim();
    await new Promise((r) => setTimeout(r, 1100));
    await addOrganizations(25, "after target");
    const beforeRestore = await count();
    await cluster.psql("SELECT pg_switch_wal()");
    await backrest("check"); // waits until the current WAL segment is archived

    await cluster.stop("fast");
    const t1 = performance.now();
    await backrest(
      "--delta",
      "--type=time",
      `--target=${target}`,
      "--target-action=promote",
      "restore",
    );
    await cluster.start();
    // Recovery ends with a promotion; wait until the cluster accepts writes.
    for (let i = 0; i < 100; i++) {
      if ((await cluster.psql("SELECT pg_is_in_recovery()")).trim() === "f") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const restoreMs = Math.round(performance.now() - t1);
    const afterRestore = await count();
    const info = await backrest("info");

    const report = {
      backupMs,
      restoreMs,
      target,
      rows: { atBackup, beforeTarget, beforeRestore, afterRestore },
      info: info.trim().split("\n").slice(0, 8),
    };
    console.log(`[pitr] ${JSON.stringify(report)}`);
    expect(atBackup).toBe(100);
    expect(beforeRestore).toBe(175);
    expect(afterRestore).toBe(beforeTarget);
    expect(afterRestore).toBe(150);
    // The restored cluster is writable and serves Haven's schema.
    await addOrganizations(1, "after restore");
    expect(await count()).toBe(151);
  }, 300_000);
});
