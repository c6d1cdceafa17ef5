import { randomBytes } from "node:crypto";
import { chmod, link, mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
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

  /**
   * Add a fresh random PHI data key to the file and make it the active one; older keys stay so
   * their ciphertexts still decrypt until `npm run keys -- rotate` has re-encrypted them.
   * The file is replaced atomically (temp file + rename, mode 0600).
   * @param id key id (default `k<YYYYMMDD>[-n]`)
   * @returns the new key id
   * @throws KeyError when the id is malformed or already present
   */
  async addPhiKey(id?: string, now: Date = new Date()): Promise<string> {
    await this.load(); // validates mode and format (messages never quote the file)
    const parsed = JSON.parse(await readFile(this.path, "utf8")) as KeyFileShape;
    const taken = new Set(parsed.phiKeys.map((k) => k.id));
    let newId = id;
    if (!newId) {
      const base = `k${now.toISOString().slice(0, 10).replaceAll("-", "")}`;
      newId = base;
      for (let n = 2; taken.has(newId); n++) newId = `${base}-${n}`;
    }
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(newId))
      throw new KeyError("key ids are 1-32 of A-Z a-z 0-9 _ -");
    if (taken.has(newId)) throw new KeyError(`PHI key id "${newId}" already exists`);
    const body: KeyFileShape = {
      ...parsed,
      activeKeyId: newId,
      phiKeys: [{ id: newId, key: randomBytes(32).toString("base64") }, ...parsed.phiKeys],
    };
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    try {
      await chmod(tmp, 0o600);
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    return newId;
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
