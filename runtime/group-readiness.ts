/**
 * Whether the consumer groups are keeping up, from Kafka's own view: each group's members and what they were
 * assigned, its committed offsets against the partitions' ends. `/healthz` answers whether the dependencies are
 * up; this answers whether the work is flowing: a group with no member, a partition no member is assigned, or a
 * partition further behind than `maxLag` makes the system not ready.
 */
import { type Admin, AssignerProtocol } from "kafkajs";

export interface GroupSpec {
  groupId: string;
  topics: string[];
}

export interface GroupReadiness {
  groupId: string;
  state: string;
  members: number;
  partitions: number;
  /** `topic[partition]` no member is assigned. */
  unassigned: string[];
  lag: number;
  maxPartitionLag: number;
  /** Each partition: committed offset (-1: nothing committed), end offset, lag, and the member assigned it. */
  positions: PartitionPosition[];
}

export interface PartitionPosition {
  topic: string;
  partition: number;
  committed: string;
  end: string;
  lag: number;
  /** The kafkajs client id of the member assigned the partition; null when none is. */
  member: string | null;
}

export interface Readiness {
  ready: boolean;
  /** Why not, one line each. */
  reasons: string[];
  groups: GroupReadiness[];
}

/** Reads every group's members, assignments, committed offsets and the topics' ends (a few admin requests). */
export async function groupReadiness(admin: Admin, groups: GroupSpec[], maxLag: number): Promise<Readiness> {
  const topics = [...new Set(groups.flatMap((g) => g.topics))];
  const ends = new Map<string, Map<number, bigint>>();
  await Promise.all(
    topics.map(async (topic) => {
      const offsets = await admin.fetchTopicOffsets(topic);
      ends.set(topic, new Map(offsets.map((o) => [o.partition, BigInt(o.high)])));
    }),
  );
  const described = await admin.describeGroups(groups.map((g) => g.groupId));
  const result: GroupReadiness[] = [];
  for (const group of groups) {
    const info = described.groups.find((d) => d.groupId === group.groupId);
    const assigned = new Map<string, string>();
    for (const member of info?.members ?? []) {
      const decoded = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
      for (const [topic, partitions] of Object.entries(decoded?.assignment ?? {})) {
        for (const p of partitions) assigned.set(`${topic}[${p}]`, member.clientId);
      }
    }
    const committed = await admin.fetchOffsets({ groupId: group.groupId, topics: group.topics });
    let lag = 0;
    let maxPartitionLag = 0;
    const unassigned: string[] = [];
    let partitions = 0;
    const positions: PartitionPosition[] = [];
    for (const topic of group.topics) {
      const topicCommitted = committed.find((c) => c.topic === topic)?.partitions ?? [];
      for (const [partition, end] of ends.get(topic) ?? []) {
        partitions++;
        if (!assigned.has(`${topic}[${partition}]`)) unassigned.push(`${topic}[${partition}]`);
        const at = BigInt(topicCommitted.find((c) => c.partition === partition)?.offset ?? "-1");
        // The ends are read before the committed offsets: records written in between may be committed already
        // (committed above the end read), which is no lag, not a negative one.
        const behind = Math.max(0, Number(end - (at < 0n ? 0n : at)));
        positions.push({
          topic,
          partition,
          committed: String(at),
          end: String(end),
          lag: behind,
          member: assigned.get(`${topic}[${partition}]`) ?? null,
        });
        lag += behind;
        maxPartitionLag = Math.max(maxPartitionLag, behind);
      }
    }
    result.push({
      groupId: group.groupId,
      state: info?.state ?? "Unknown",
      members: info?.members.length ?? 0,
      partitions,
      unassigned,
      lag,
      maxPartitionLag,
      positions,
    });
  }
  const reasons = result.flatMap((g) => [
    ...(g.members === 0 ? [`${g.groupId}: no member (no host runs it)`] : []),
    ...(g.members > 0 && g.unassigned.length > 0
      ? [`${g.groupId}: ${g.unassigned.length} partition(s) without an owner (${g.state})`]
      : []),
    ...(g.maxPartitionLag > maxLag
      ? [`${g.groupId}: a partition is ${g.maxPartitionLag} records behind (at most ${maxLag})`]
      : []),
  ]);
  return { ready: reasons.length === 0, reasons, groups: result };
}
