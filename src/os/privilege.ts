/**
 * Dropping root once every socket is bound and every source is open: to --user (default: the user who ran
 * sudo, from SUDO_UID/SUDO_GID, else nobody), with setgroups, setgid, setuid in that order, checked
 * afterwards. Fails closed: if the process could still become root again, it must not go on serving.
 */
import { accessSync, chownSync, constants, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ConfigError, fsReason } from "../errors.ts";

export interface Identity {
  /** What the log says: "alice (uid 1000, gid 1000)". */
  name: string;
  uid: number;
  gid: number;
}

/** Root's view: who the process runs as. */
export function isRoot(): boolean {
  return typeof process.geteuid === "function" && process.geteuid() === 0;
}

/** One /etc/passwd or /etc/group line's name and numeric id (macOS writes nobody as -2: unsigned 32-bit). */
function ids(text: string, idField: number): Map<string, { id: number; gid?: number }> {
  const out = new Map<string, { id: number; gid?: number }>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    const id = Number(f[idField]);
    if (!f[0] || !Number.isInteger(id)) continue;
    const gid = idField === 2 ? Number(f[3]) : undefined;
    out.set(f[0], { id: id >>> 0, gid: gid !== undefined && Number.isInteger(gid) ? gid >>> 0 : undefined });
  }
  return out;
}

const read = (p: string) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
};

/**
 * The account to run as. `spec`: --user as given ("alice", "1000", "1000:1000", "alice:staff"); without it,
 * SUDO_UID/SUDO_GID, else nobody. undefined: keep root (--user root).
 */
export function resolveIdentity(spec: string | undefined, env: NodeJS.ProcessEnv = process.env, passwd = read("/etc/passwd"), group = read("/etc/group")): Identity | undefined {
  const users = ids(passwd, 2);
  const groups = ids(group, 2);
  const byId = (m: Map<string, { id: number }>, id: number) => [...m].find(([, v]) => v.id === id)?.[0];
  if (spec === undefined || spec === "") {
    const uid = Number(env.SUDO_UID);
    if (env.SUDO_UID && Number.isInteger(uid) && uid > 0) {
      const gid = Number(env.SUDO_GID);
      const g = env.SUDO_GID && Number.isInteger(gid) ? gid : (users.get(byId(users, uid) ?? "")?.gid ?? uid);
      return { name: env.SUDO_USER || byId(users, uid) || `uid ${uid}`, uid, gid: g };
    }
    spec = "nobody";
  }
  const [u, g] = spec.split(":", 2) as [string, string | undefined];
  let uid: number;
  let gid: number | undefined;
  let name: string;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    name = byId(users, uid) ?? `uid ${uid}`;
    gid = users.get(name)?.gid;
  } else {
    const entry = users.get(u);
    if (!entry) throw new ConfigError("E_USER", `--user ${spec}: no such user in /etc/passwd`);
    uid = entry.id;
    gid = entry.gid;
    name = u;
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const entry = groups.get(g);
      if (!entry) throw new ConfigError("E_USER", `--user ${spec}: no such group in /etc/group`);
      gid = entry.id;
    }
  }
  if (uid === 0) return undefined;
  if (gid === undefined) throw new ConfigError("E_USER", `--user ${spec}: no group known for uid ${uid}: give it as --user ${uid}:GID`);
  return { name, uid, gid };
}

export const describeIdentity = (who: Identity) => (who.name === `uid ${who.uid}` ? `uid ${who.uid}, gid ${who.gid}` : `${who.name} (uid ${who.uid}, gid ${who.gid})`);

/**
 * Give `dirs` (created when missing) and everything under them to `who`: the state and cache the
 * servers go on writing after the drop. Symbolic links are not followed (a link planted in the state
 * directory must not hand its target away).
 */
export function handOver(dirs: Array<string | undefined>, who: Identity): void {
  const walk = (p: string, depth: number) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.uid !== who.uid || st.gid !== who.gid) {
      try {
        chownSync(p, who.uid, who.gid);
      } catch (err) {
        // A FAT or exFAT USB stick has no owners (EPERM): whoever its mount lets write may; serve checks
        // after the drop that the directory is writable and says so if not.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "EPERM" && code !== "EINVAL" && code !== "ENOTSUP" && code !== "EROFS") throw err;
        return;
      }
    }
    if (st.isDirectory() && depth < 8) for (const n of readdirSync(p)) walk(join(p, n), depth + 1);
  };
  for (const d of dirs) {
    if (!d) continue;
    let step = "cannot be created";
    try {
      if (!existsSync(d)) {
        // Directories above it made here stay root's: open to pass through (0755), the last one its own.
        mkdirSync(dirname(d), { recursive: true, mode: 0o755 });
        mkdirSync(d, { mode: 0o750 });
      }
      step = `cannot be handed to ${describeIdentity(who)}`;
      walk(d, 0);
    } catch (err) {
      const at = (err as NodeJS.ErrnoException).path;
      throw new ConfigError("E_STATE_DIR", `${d} ${step} (${fsReason(err)}${at && at !== d ? `: ${at}` : ""}): choose another --state-dir/--cache-dir`);
    }
  }
}

/** setgroups, setgid, setuid; then proof that root is gone for good (and not only in name). */
export function dropTo(who: Identity): void {
  const p = process as NodeJS.Process & { setgroups?: (g: number[]) => void };
  if (!p.setuid || !p.setgid || !p.setgroups) throw new ConfigError("E_PRIV", "this runtime cannot change its user: run netboot without root (a systemd unit with AmbientCapabilities), or --user root");
  try {
    p.setgroups([who.gid]);
    p.setgid(who.gid);
    p.setuid(who.uid);
  } catch (err) {
    throw new ConfigError("E_PRIV", `could not drop root to ${describeIdentity(who)}: ${(err as Error).message}`);
  }
  const still = [process.getuid?.(), process.geteuid?.(), process.getgid?.(), process.getegid?.()].some((id) => id === 0) || (process.getgroups?.() ?? []).includes(0);
  let regained = false;
  try {
    p.setuid(0);
    regained = true;
  } catch {
    // EPERM: as it must be
  }
  if (still || regained) throw new ConfigError("E_PRIV", `dropping root to ${describeIdentity(who)} did not take (uid ${process.getuid?.()}, euid ${process.geteuid?.()}, gid ${process.getgid?.()}): refusing to go on as root`);
  const thread = threadStillRoot();
  if (thread) throw new ConfigError("E_PRIV", `dropping root to ${describeIdentity(who)} did not reach every thread (${thread}): refusing to go on as root`);
}

/**
 * Linux: a thread of this process that still has a root id (the runtime's own threads: setuid must reach
 * each of them, as glibc's does); undefined when none, or where /proc/self/task is not there to ask.
 */
function threadStillRoot(): string | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync("/proc/self/task");
  } catch {
    return undefined;
  }
  for (const t of tasks) {
    let status: string;
    try {
      status = readFileSync(`/proc/self/task/${t}/status`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    for (const field of ["Uid", "Gid"]) {
      const ids = status.match(new RegExp(`^${field}:\\s+(.*)$`, "m"))?.[1]?.trim().split(/\s+/) ?? [];
      if (ids.includes("0")) return `thread ${t}: ${field} ${ids.join(" ")}`;
    }
  }
  return undefined;
}

/**
 * Before anything is made as root: every directory above each of `dirs` must let `who` through (x for
 * its owner, its group or others), else the line checkDirsAs would say after the drop, said before the
 * state directory is even created. ACLs are not read here: checkDirsAs, as that user, still decides.
 */
export function checkReachAs(dirs: ReadonlyArray<{ dir: string; flag: string }>, who: Identity): void {
  for (const { dir, flag } of dirs) {
    const closed = closedAbove(resolve(dir), who);
    if (closed) throw new ConfigError("E_PRIV", `${flag} ${dir}: ${who.name} cannot enter and write it (permission denied: ${closed} is closed to that user): give a ${flag} that ${who.name} can enter, or --user root`);
  }
}

function closedAbove(dir: string, who: Identity): string | undefined {
  const chain: string[] = [];
  for (let p = dirname(dir); ; p = dirname(p)) {
    chain.unshift(p);
    if (p === dirname(p)) break;
  }
  for (const p of chain) {
    let st;
    try {
      st = statSync(p);
    } catch {
      return undefined; // not there: made below, open to pass through
    }
    if (!st.isDirectory()) return undefined; // handOver says what is wrong with it
    const bits = st.uid === who.uid ? st.mode >> 6 : st.gid === who.gid ? st.mode >> 3 : st.mode;
    if ((bits & 1) === 0) return p;
  }
  return undefined;
}

/**
 * After the drop: each directory the servers go on writing (the state: leases, hosts, logs; the cache) must
 * be one this account can enter and write. One that lies under a directory closed to it (/root/lab/state)
 * stops the start here, before anything is served, with the two ways out.
 */
export function checkDirsAs(dirs: ReadonlyArray<{ dir: string; flag: string }>, who: Identity): void {
  for (const { dir, flag } of dirs) {
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new ConfigError("E_PRIV", `${flag} ${dir}: ${who.name} cannot enter and write it (${fsReason(err)}; a directory above it may be closed to that user): give a ${flag} that ${who.name} can enter, or --user root`);
    }
  }
}
