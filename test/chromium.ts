/**
 * The browser the console test drives (test/service/console.test.ts): Debian's Chromium at /usr/bin/chromium,
 * installed with apt-get when it is missing. Nothing downloads a browser build of its own (no `playwright
 * install`): playwright-core drives the system's.
 */
import { InfraError } from "../infra/index.ts";

export const CHROMIUM = "/usr/bin/chromium";

/** Flags for a headless run in a container: no sandbox (root), no GPU, nothing phoning home. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Installs Debian's `chromium` unless it is there; throws an InfraError saying what is missing if it cannot. */
export async function ensureChromium(path = CHROMIUM): Promise<void> {
  if (await Bun.file(path).exists()) return;
  const manual = "install it with `apt-get install -y chromium` (Debian's package) and run the tests again";
  if (process.getuid?.() !== 0) {
    throw new InfraError(`Chromium is missing (${path}) and installing it needs root: ${manual}`);
  }
  if (!Bun.which("apt-get"))
    throw new InfraError(`Chromium is missing (${path}) and there is no apt-get: ${manual}`);
  console.error(`pitstop tests: ${path} is missing; installing Debian's chromium with apt-get (once)`);
  const apt = async (...args: string[]) => {
    const run = Bun.spawn(["apt-get", ...args], {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    const [out, err, code] = await Promise.all([
      new Response(run.stdout).text(),
      new Response(run.stderr).text(),
      run.exited,
    ]);
    return { code, tail: `${out}\n${err}`.trim().split("\n").slice(-5).join("\n") };
  };
  let install = await apt("install", "-y", "chromium");
  if (install.code !== 0) {
    // A fresh machine's package lists may be empty or stale.
    const update = await apt("update");
    if (update.code !== 0) {
      throw new InfraError(
        `Chromium is missing (${path}); apt-get update failed:\n${update.tail}\n${manual}`,
      );
    }
    install = await apt("install", "-y", "chromium");
  }
  if (install.code !== 0 || !(await Bun.file(path).exists())) {
    throw new InfraError(
      `Chromium is missing (${path}); apt-get install chromium failed:\n${install.tail}\n${manual}`,
    );
  }
}
