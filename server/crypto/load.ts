import { access } from "node:fs/promises";
import { join } from "node:path";
import type { AppConfig } from "../config.ts";
import { FileKeyProvider } from "./key-file.ts";
import { EnvKeyProvider, KeyError, type KeyProvider, Keyring, parseEnvKeys } from "./keyring.ts";

export interface LoadedKeys {
  keyring: Keyring;
  provider: KeyProvider;
  /** True when the embedded default just generated a new key file. */
  generated: boolean;
  keyFile?: string;
}

export interface LoadKeysOptions {
  /**
   * Asked before a new key file would be generated: true when the database already holds
   * encrypted data, so fresh keys could never decrypt it (a wrong HAVEN_DATA_DIR).
   */
  databaseHoldsEncryptedData?: () => Promise<boolean>;
}

/**
 * Pick the key provider for this configuration: env keys when both variables are set, otherwise
 * (never in production, which `loadConfig` refuses) a 0600 key file under HAVEN_DATA_DIR.
 * @throws KeyError on malformed or unsafe key material, or when a key file would be generated for
 *   a database that already holds encrypted data
 */
export async function loadKeys(
  config: AppConfig,
  options: LoadKeysOptions = {},
): Promise<LoadedKeys> {
  if (config.HAVEN_PHI_KEYS && config.HAVEN_BLIND_INDEX_KEY) {
    const provider = new EnvKeyProvider(config.HAVEN_PHI_KEYS, config.HAVEN_BLIND_INDEX_KEY);
    return { keyring: new Keyring(await provider.load()), provider, generated: false };
  }
  const keyFile = join(config.HAVEN_DATA_DIR, "keys.json");
  const exists = await access(keyFile).then(
    () => true,
    () => false,
  );
  if (!exists && (await options.databaseHoldsEncryptedData?.())) {
    throw new KeyError(
      `No key file at ${keyFile}, but the database already holds encrypted data: refusing to generate new keys ` +
        "that could not decrypt it. Point HAVEN_DATA_DIR at the directory holding the original keys.json, " +
        "or set HAVEN_PHI_KEYS and HAVEN_BLIND_INDEX_KEY.",
    );
  }
  const provider = new FileKeyProvider(keyFile);
  const keyring = new Keyring(await provider.load());
  return { keyring, provider, generated: provider.created, keyFile };
}

/**
 * Check HAVEN_PHI_KEYS / HAVEN_BLIND_INDEX_KEY (when set) without touching anything else, so a
 * malformed value fails before the database is opened.
 * @throws KeyError naming the variable and the expected format, never the value
 */
export function validateEnvKeys(config: AppConfig): void {
  if (config.HAVEN_PHI_KEYS && config.HAVEN_BLIND_INDEX_KEY) {
    const keyring = new Keyring(parseEnvKeys(config.HAVEN_PHI_KEYS, config.HAVEN_BLIND_INDEX_KEY));
    if (keyring.keyIds().length === 0) throw new KeyError("no PHI encryption key configured");
  }
}
