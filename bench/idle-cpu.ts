/**
 * Idle cost of the whole service center in one process (`npm start`'s shape: HTTP, every actor and reactor, in a
 * namespace of its own with the production partition count): after it owns every partition and has settled, how
 * much of a core it uses with no request and no record to handle (issue 10's goal: at most 2%).
 *
 *   bun bench/idle-cpu.ts [--seconds 30]
 *
 * The machine's load is printed with it (this process's CPU time is its own, but a busy machine stretches it).
 */
import { parseArgs } from "node:util";
import { benchLog, startBenchService } from "./service.ts";
import { codeState, cpuMeter, machineNote, setup } from "./support.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "30" } } });
const seconds = Number(values.seconds);
const { config, kafka } = await setup("idle");
const service = await startBenchService(config, kafka, benchLog());
try {
  await Bun.sleep(10_000); // settle: the first timer polls, relay sweeps and fetches of a fresh namespace
  const timersBefore = service.host.stats().timers;
  const meter = cpuMeter();
  await Bun.sleep(seconds * 1000);
  const cpu = meter();
  console.log(`## Idle CPU (${codeState()}; ${machineNote()})`);
  console.log(
    `one process, ${Object.keys(service.host.stats().consumers).length} consumer groups, idle ${seconds} s: ` +
      `${cpu.process}% of a core (machine ${cpu.machine}% busy); timers fired meanwhile ${service.host.stats().timers.fired - timersBefore.fired}`,
  );
} finally {
  await service.stop();
  process.exit(0);
}
