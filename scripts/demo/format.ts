/**
 * How the demo writes to the terminal: colours (off on a pipe or with NO_COLOR), number and
 * duration formats shared by the live display and the summary, and one `print`.
 */
import { relative } from 'node:path';

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

export function createStyle(color: boolean): Style {
  const wrap = (open: number, close: number) => (s: string) => (color ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return { bold: wrap(1, 22), dim: wrap(2, 22), green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39), cyan: wrap(36, 39) };
}

export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
export const millis = (ms: number): string => (ms < 1_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);
/** An upper bound read from a histogram bucket (seconds) as a readable duration. */
export const bound = (seconds: number | undefined): string => (seconds === undefined ? 'n/a' : seconds === Infinity ? 'over the largest bucket' : `≤ ${millis(seconds * 1000)}`);

/** Where the demo writes: stdout, whether it is a terminal, its style, and path display. */
export interface Terminal {
  out: NodeJS.WriteStream;
  tty: boolean;
  st: Style;
  print(line?: string): void;
  /** A path relative to the working directory, as a user would type it. */
  rel(path: string): string;
}

export function createTerminal(out: NodeJS.WriteStream = process.stdout): Terminal {
  const tty = out.isTTY === true;
  return {
    out,
    tty,
    st: createStyle(tty && process.env.NO_COLOR === undefined),
    print: (line = '') => void out.write(`${line}\n`),
    rel: (p) => relative(process.cwd(), p) || p,
  };
}
