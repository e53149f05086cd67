/**
 * Linux /proc readings for the benchmark: memory of the scorer process, CPU time per thread and
 * per process, and the whole machine's busy time, so a phase can say where the cores went
 * (scorer threads, broker, registry, this process, everything else).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

let ticks: number | undefined;
/** Clock ticks per second of /proc CPU times (CLK_TCK, 100 on every Linux we know, asked once). */
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // the process or thread is gone
  }
};

/** VmRSS and VmHWM (peak RSS) of a process in bytes, or undefined once it exited. */
export function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  const status = read(`/proc/${pid}/status`);
  if (status === undefined) return undefined;
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** utime + stime in seconds from a /proc stat line (the comm field may hold spaces and parentheses). */
function cpuSecondsOfStat(stat: string | undefined): number | undefined {
  if (stat === undefined) return undefined;
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(rest[11]) + Number(rest[12])) / clockTicks();
}

/** CPU seconds of a whole process (all threads), or undefined if it is gone. */
export function processCpu(pid: number): number | undefined {
  return cpuSecondsOfStat(read(`/proc/${pid}/stat`));
}

export interface ThreadCpu {
  tid: number;
  name: string;
  seconds: number;
}

/** CPU seconds of every thread of a process, with its name (comm). */
export function threadCpu(pid: number): ThreadCpu[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: ThreadCpu[] = [];
  for (const t of tids) {
    const seconds = cpuSecondsOfStat(read(`/proc/${pid}/task/${t}/stat`));
    if (seconds === undefined) continue;
    out.push({ tid: Number(t), name: (read(`/proc/${pid}/task/${t}/comm`) ?? '?').trim(), seconds });
  }
  return out;
}

/**
 * Busy, stolen and total CPU seconds of the whole machine since boot (first line of /proc/stat).
 * Steal is time this virtual machine was ready to run and the hypervisor ran someone else: busy
 * for the machine's accounting, but no process here used it.
 */
export function machineCpu(): { busy: number; steal: number; total: number } {
  const line = (read('/proc/stat') ?? '').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already inside user)
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, x) => a + x, 0);
  return { busy: (total - idle) / clockTicks(), steal: (v[7] ?? 0) / clockTicks(), total: total / clockTicks() };
}

/** The pid in a stack pid file, if that process is alive. */
export function stackPid(stackDir: string, name: 'kafka' | 'registry'): number | undefined {
  const file = `${stackDir}/pids/${name}.pid`;
  if (!existsSync(file)) return undefined;
  // The stack writes the pid on the first line and what runs (release included) on the second.
  const pid = Number(readFileSync(file, 'utf8').split('\n', 1)[0]?.trim());
  return Number.isInteger(pid) && existsSync(`/proc/${pid}`) ? pid : undefined;
}

export interface CpuSnapshot {
  at: number;
  machine: { busy: number; steal: number; total: number };
  scorerThreads: ThreadCpu[];
  broker: number | undefined;
  registry: number | undefined;
  bench: number;
}

export function cpuSnapshot(scorerPid: number, stackDir: string): CpuSnapshot {
  const kafka = stackPid(stackDir, 'kafka');
  const registry = stackPid(stackDir, 'registry');
  const u = process.cpuUsage();
  return {
    at: performance.now(),
    machine: machineCpu(),
    scorerThreads: threadCpu(scorerPid),
    broker: kafka === undefined ? undefined : processCpu(kafka),
    registry: registry === undefined ? undefined : processCpu(registry),
    bench: (u.user + u.system) / 1e6,
  };
}

/** Cores used between two snapshots (CPU seconds / wall seconds), by consumer. */
export interface CpuBreakdown {
  wallSeconds: number;
  machineCores: number;
  machineBusyCores: number;
  scorerCores: number;
  /** The event-loop thread: at ~1.0 it is the bottleneck. */
  scorerMainThreadCores: number;
  /** Cores of the scorer's busiest threads (name/tid; the main thread by its role), the rest summed. */
  scorerThreadsByName: Record<string, number>;
  brokerCores: number | undefined;
  registryCores: number | undefined;
  benchCores: number;
  /** Everything else on the machine (other engineers' builds and tests, the kernel). */
  otherCores: number;
  /** Taken by the hypervisor for other virtual machines (inside machineBusyCores, not in otherCores). */
  stealCores: number;
}

export function cpuBreakdown(a: CpuSnapshot, b: CpuSnapshot, scorerPid: number): CpuBreakdown {
  const wall = (b.at - a.at) / 1000;
  const before = new Map(a.scorerThreads.map((t) => [t.tid, t.seconds]));
  // Node names every thread of its own "node" (V8 platform, libuv pool, worker_threads, and the
  // onnxruntime pool threads they start), so threads are listed one by one, busiest first.
  const used = b.scorerThreads.map((t) => ({ t, cores: (t.seconds - (before.get(t.tid) ?? 0)) / wall })).sort((x, y) => y.cores - x.cores);
  const scorer = used.reduce((acc, u) => acc + u.cores, 0) * wall;
  const main = (used.find((u) => u.t.tid === scorerPid)?.cores ?? 0) * wall;
  const byName: Record<string, number> = {};
  let rest = 0;
  for (const u of used) {
    if (u.t.tid === scorerPid) byName['main (event loop)'] = u.cores;
    else if (Object.keys(byName).length < 6 && u.cores >= 0.01) byName[`${u.t.name}/${u.t.tid}`] = u.cores;
    else rest += u.cores;
  }
  if (rest > 0) byName['other threads'] = rest;
  const d = (x: number | undefined, y: number | undefined): number | undefined => (x === undefined || y === undefined ? undefined : (y - x) / wall);
  const busy = (b.machine.busy - a.machine.busy) / wall;
  const steal = (b.machine.steal - a.machine.steal) / wall;
  const broker = d(a.broker, b.broker);
  const registry = d(a.registry, b.registry);
  const bench = (b.bench - a.bench) / wall;
  for (const k of Object.keys(byName)) byName[k] = round2(byName[k] as number);
  return {
    wallSeconds: round2(wall),
    machineCores: os.cpus().length,
    machineBusyCores: round2(busy),
    scorerCores: round2(scorer / wall),
    scorerMainThreadCores: round2(main / wall),
    scorerThreadsByName: byName,
    brokerCores: broker === undefined ? undefined : round2(broker),
    registryCores: registry === undefined ? undefined : round2(registry),
    benchCores: round2(bench),
    otherCores: round2(Math.max(0, busy - steal - scorer / wall - (broker ?? 0) - (registry ?? 0) - bench)),
    stealCores: round2(steal),
  };
}

export const round2 = (x: number): number => Math.round(x * 100) / 100;
