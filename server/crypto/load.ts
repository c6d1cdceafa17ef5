import { join } from "node:path";
import type { AppConfig } from "../config.ts";
import { FileKeyProvider } from "./key-file.ts";
import { EnvKeyProvider, type KeyProvider, Keyring } from "./keyring.ts";

export interface LoadedKeys {
  keyring: Keyring;
  provider: KeyProvider;
  /** True when the embedded default just generated a new key file. */
  generated: boolean;
  keyFile?: string;
}

/**
 * Pick the key provider for this configuration: env keys when both variables are set, otherwise
 * (never in production, which `loadConfig` refuses) a 0600 key file under HAVEN_DATA_DIR.
 * @throws KeyError on malformed or unsafe key material
 */
export async function loadKeys(config: AppConfig): Promise<LoadedKeys> {
  if (config.HAVEN_PHI_KEYS && config.HAVEN_BLIND_INDEX_KEY) {
    const provider = new EnvKeyProvider(config.HAVEN_PHI_KEYS, config.HAVEN_BLIND_INDEX_KEY);
    return { keyring: new Keyring(await provider.load()), provider, generated: false };
  }
  const keyFile = join(config.HAVEN_DATA_DIR, "keys.json");
  const provider = new FileKeyProvider(keyFile);
  const keyring = new Keyring(await provider.load());
  return { keyring, provider, generated: provider.created, keyFile };
}
