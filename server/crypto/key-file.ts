import { randomBytes } from "node:crypto";
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { KeyError, type KeyMaterial, type KeyProvider } from "./keyring.ts";

interface KeyFileShape {
  version: 1;
  activeKeyId: string;
  phiKeys: { id: string; key: string }[];
  blindIndexKey: string;
}

/**
 * Provider for the embedded default: keys live in a JSON file with mode 0600.
 * On first use the file is created with fresh random keys and {@link created} is set, so the
 * caller can tell the operator. Refuses to read a file that group or others can access.
 */
export class FileKeyProvider implements KeyProvider {
  readonly name = "file";
  created = false;
  constructor(readonly path: string) {}

  async load(): Promise<KeyMaterial> {
    let raw: string;
    try {
      raw = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      await this.#generate();
      raw = await readFile(this.path, "utf8");
    }
    const mode = (await stat(this.path)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new KeyError(
        `key file ${this.path} is readable by others (mode ${mode.toString(8)}); chmod 600 it`,
      );
    }
    let parsed: KeyFileShape;
    try {
      parsed = JSON.parse(raw) as KeyFileShape;
    } catch {
      throw new KeyError(`key file ${this.path} is not valid JSON`);
    }
    if (
      parsed.version !== 1 ||
      !Array.isArray(parsed.phiKeys) ||
      typeof parsed.blindIndexKey !== "string" ||
      parsed.phiKeys.some((k) => typeof k?.id !== "string" || typeof k?.key !== "string")
    ) {
      throw new KeyError(`key file ${this.path} has an unknown format`);
    }
    return {
      activeKeyId: parsed.activeKeyId,
      phiKeys: parsed.phiKeys.map((k) => ({ id: k.id, key: Buffer.from(k.key, "base64") })),
      blindIndexKey: Buffer.from(parsed.blindIndexKey, "base64"),
    };
  }

  async #generate(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const id = `k${new Date().toISOString().slice(0, 10).replaceAll("-", "")}`;
    const body: KeyFileShape = {
      version: 1,
      activeKeyId: id,
      phiKeys: [{ id, key: randomBytes(32).toString("base64") }],
      blindIndexKey: randomBytes(32).toString("base64"),
    };
    // Write a private temp file, then hard-link it into place: the key file appears complete or not
    // at all, and a key file another process created meanwhile is never overwritten (EEXIST).
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    try {
      await chmod(tmp, 0o600);
      await link(tmp, this.path);
      this.created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      await unlink(tmp);
    }
  }
}
