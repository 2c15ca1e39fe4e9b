/// <reference types="@webgpu/types" />
/**
 * Where the `GPU` object comes from: `navigator.gpu` in browsers (and anywhere a host already
 * installed one), else the `webgpu` npm package (Dawn for Node.js), imported dynamically so that a
 * browser bundle never loads it.
 *
 * Node.js on Linux without a GPU: Dawn needs a Vulkan loader and a driver. Debian's `chromium`
 * package ships both (SwiftShader, a CPU Vulkan implementation), under /usr/lib/chromium, but
 * neither where the system looks. So, only when nothing else is configured:
 *   - VK_ICD_FILENAMES points at chromium's SwiftShader ICD when no Vulkan driver is registered
 *     (no VK_ICD_FILENAMES / VK_DRIVER_FILES and no manifest in the standard icd.d folders);
 *   - the loader `libvulkan.so.1` is loaded from /usr/lib/chromium (or RING_LINEAR_VULKAN_LOADER)
 *     when the system has none, so Dawn's own dlopen("libvulkan.so.1") finds it already loaded;
 *   - XDG_RUNTIME_DIR is pointed at a private temp folder when unset (Dawn warns otherwise).
 */
import { BackendError } from '@ring-linear/core';

/** What `create()` of the `webgpu` package returns, plus how to let go of it. */
export interface GpuProvider {
  readonly gpu: GPU;
  /** 'navigator.gpu' or 'webgpu (Dawn)'. */
  readonly source: string;
  /** Notes on environment changes made for Dawn (shown in errors when no adapter is found). */
  readonly notes: readonly string[];
}

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const CHROMIUM_VULKAN_LOADER = '/usr/lib/chromium/libvulkan.so.1';
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

type NodeProcess = {
  env: Record<string, string | undefined>;
  platform: string;
  versions?: { node?: string };
  getBuiltinModule?: (name: string) => any;
  dlopen?: (module: { exports: unknown }, filename: string, flags?: number) => void;
};

function nodeProcess(): NodeProcess | null {
  const p = (globalThis as { process?: NodeProcess }).process;
  return p?.versions?.node ? p : null;
}

/** Sets up the Vulkan environment for Dawn in Node (see the header); returns what it did. */
export function prepareNodeVulkanEnv(proc: NodeProcess): string[] {
  const notes: string[] = [];
  const env = proc.env;
  const fs = proc.getBuiltinModule?.('node:fs');
  const os = proc.getBuiltinModule?.('node:os');
  const path = proc.getBuiltinModule?.('node:path');
  if (!fs || proc.platform !== 'linux') return notes;
  const exists = (p: string) => {
    try {
      return fs.existsSync(p) as boolean;
    } catch {
      return false;
    }
  };

  if (env.XDG_RUNTIME_DIR === undefined && os && path) {
    try {
      const dir = path.join(os.tmpdir(), `ring-linear-xdg-${(os.userInfo?.().uid as number | undefined) ?? 'user'}`);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      env.XDG_RUNTIME_DIR = dir;
    } catch {
      // harmless: Dawn only prints a warning without it
    }
  }

  const hasDriver =
    env.VK_ICD_FILENAMES !== undefined ||
    env.VK_DRIVER_FILES !== undefined ||
    ICD_DIRS.some((d) => {
      try {
        return (fs.readdirSync(d) as string[]).some((f) => f.endsWith('.json'));
      } catch {
        return false;
      }
    });
  if (!hasDriver && exists(SWIFTSHADER_ICD)) {
    env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    notes.push(`no Vulkan driver registered: using SwiftShader (VK_ICD_FILENAMES=${SWIFTSHADER_ICD})`);
  }

  // Load a Vulkan loader by soname first (the system's), else by path. process.dlopen() loads
  // the library and then complains that it is not a Node addon; RTLD_NODELETE keeps it loaded
  // after that complaint, which is all we need. Flags: RTLD_NOW 2 | RTLD_GLOBAL 0x100 | RTLD_NODELETE 0x1000.
  if (proc.dlopen) {
    const flags = 0x2 | 0x100 | 0x1000;
    const candidates = ['libvulkan.so.1', env.RING_LINEAR_VULKAN_LOADER ?? CHROMIUM_VULKAN_LOADER];
    for (const c of candidates) {
      if (c !== 'libvulkan.so.1' && !exists(c)) continue;
      try {
        proc.dlopen({ exports: {} }, c, flags);
        break;
      } catch (err) {
        const msg = String((err as Error).message);
        if (/self-register|Module did not|napi/i.test(msg)) {
          if (c !== 'libvulkan.so.1') notes.push(`Vulkan loader loaded from ${c}`);
          break;
        }
      }
    }
  }
  return notes;
}

/**
 * The GPU object: `navigator.gpu` when present, else Dawn through the `webgpu` package (Node).
 * `dawnOptions` are passed to the package's `create()` (e.g. ['backend=vulkan']).
 */
export async function acquireGpu(dawnOptions: readonly string[] = []): Promise<GpuProvider> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, source: 'navigator.gpu', notes: [] };
  const proc = nodeProcess();
  if (!proc) throw new BackendError('webgpu: WebGPU is not available: this environment has no navigator.gpu');
  const notes = prepareNodeVulkanEnv(proc);
  // A variable specifier keeps bundlers from following this import into browser bundles.
  const pkg = 'webgpu';
  let mod: { create: (options: string[]) => GPU };
  try {
    mod = (await import(/* @vite-ignore */ pkg)) as typeof mod;
  } catch (err) {
    throw new BackendError(`webgpu: WebGPU is not available in Node.js: the optional 'webgpu' package could not be loaded (${(err as Error).message})`);
  }
  return { gpu: mod.create([...dawnOptions]), source: 'webgpu (Dawn)', notes };
}
