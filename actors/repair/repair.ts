/**
 * A repair (key: repair id), started by the job saga for a confirmed booking, then driven by technicians:
 *
 *   STARTED -> DIAGNOSING -> REPAIRING -> TESTING -> COMPLETED
 *
 * Stages go forward only; within a stage the percentage does not go down. Completing needs TESTING, and
 * carries the parts used and the labour, which the job saga turns into an invoice.
 */
import { Type } from "@sinclair/typebox";
import { defineActor, type TurnResult } from "../../runtime/index.ts";
import { emitted, type PartUsed, PartUsedSchema, RepairStage } from "../events.ts";
import type { Refs } from "../refs.ts";
import { accept, type Reply, refuse } from "../reply.ts";
import { LABOUR_RATE_PER_HOUR } from "../service-catalogue.ts";

export const REPAIR_STATUSES = ["NEW", "STARTED", "DIAGNOSING", "REPAIRING", "TESTING", "COMPLETED"] as const;
export type RepairStatus = (typeof REPAIR_STATUSES)[number];
const ORDER: RepairStatus[] = ["STARTED", "DIAGNOSING", "REPAIRING", "TESTING", "COMPLETED"];

export interface RepairState {
  repairId: string;
  status: RepairStatus;
  progress: number;
  bookingId: string;
  customerId: string;
  technicianId: string;
  estimatedMinutes: number;
  parts: PartUsed[];
  labourMinutes: number;
  labourCost: number;
  partsCost: number;
  startedAt: string | null;
  completedAt: string | null;
  updatedAt: string | null;
  version: number;
}

export const repairMessages = {
  START: Type.Object({
    bookingId: Type.String(),
    customerId: Type.String(),
    technicianId: Type.String(),
    estimatedMinutes: Type.Integer({ minimum: 1 }),
  }),
  PROGRESS: Type.Object({
    status: RepairStage,
    progress: Type.Integer({ minimum: 0, maximum: 100 }),
    technicianId: Type.String(),
  }),
  COMPLETE: Type.Object({
    parts: Type.Array(PartUsedSchema),
    labourMinutes: Type.Integer({ minimum: 0 }),
    technicianId: Type.String(),
  }),
  /** The job saga asking where the repair stands: a completed one tells it again (a lost REPAIR_DONE is made good). */
  REPORT: Type.Object({}),
};

export const initialRepair = (repairId: string): RepairState => ({
  repairId,
  status: "NEW",
  progress: 0,
  bookingId: "",
  customerId: "",
  technicianId: "",
  estimatedMinutes: 0,
  parts: [],
  labourMinutes: 0,
  labourCost: 0,
  partsCost: 0,
  startedAt: null,
  completedAt: null,
  updatedAt: null,
  version: 0,
});

/** Labour is billed per started quarter hour. */
export function labourCost(minutes: number): number {
  return Math.ceil(minutes / 15) * (LABOUR_RATE_PER_HOUR / 4);
}

export function repairActor(refs: Refs) {
  const { topics } = refs;
  return defineActor({
    kind: "repair",
    mailbox: refs.mailboxes.repair,
    initialState: initialRepair,
    lifecycle: { statusField: "status", final: ["NEW", "COMPLETED"] },
    eventState: (state) => ({ status: state.status, progress: state.progress }),
    messages: repairMessages,
    handle(state, message, ctx): TurnResult<RepairState> {
      const now = ctx.now.toISOString();
      const next = (changes: Partial<RepairState>) => {
        const s: RepairState = { ...state, ...changes, updatedAt: now, version: state.version + 1 };
        return {
          state: s,
          reply: accept(s) as Reply<RepairState>,
        };
      };
      const refused = (code: "not_found" | "conflict" | "invalid_transition", reason: string) => ({
        state,
        reply: refuse(code, reason),
      });
      switch (message.type) {
        case "START": {
          const p = message.payload;
          if (state.status !== "NEW") {
            return state.bookingId === p.bookingId
              ? { state, reply: accept(state) } // a copy of the same start
              : refused("conflict", `repair ${ctx.key} already belongs to booking ${state.bookingId}`);
          }
          const s = next({ ...p, status: "STARTED", progress: 0, startedAt: now });
          return {
            ...s,
            emit: [emitted(topics, "REPAIR_STARTED", { repairId: ctx.key, ...p })],
          };
        }
        case "PROGRESS": {
          const p = message.payload;
          if (state.status === "NEW") return refused("not_found", `no repair ${ctx.key}`);
          if (state.status === "COMPLETED")
            return refused("invalid_transition", "the repair is already completed");
          const from = ORDER.indexOf(state.status);
          const to = ORDER.indexOf(p.status);
          if (to < from) {
            return refused(
              "invalid_transition",
              `a repair cannot go back from ${state.status} to ${p.status}`,
            );
          }
          if (to === from && p.progress < state.progress) {
            return refused(
              "invalid_transition",
              `progress cannot go down within ${p.status} (${state.progress}% -> ${p.progress}%)`,
            );
          }
          const s = next({ status: p.status, progress: p.progress, technicianId: p.technicianId });
          return {
            ...s,
            emit: [
              emitted(topics, "REPAIR_IN_PROGRESS", {
                repairId: ctx.key,
                bookingId: state.bookingId,
                customerId: state.customerId,
                status: p.status,
                progress: p.progress,
              }),
            ],
          };
        }
        case "REPORT": {
          if (state.status !== "COMPLETED") return { state }; // in the technician's hands: nothing to tell yet
          return {
            state,
            send: [
              {
                to: refs.jobSaga(state.bookingId),
                type: "REPAIR_DONE",
                payload: {
                  repairId: ctx.key,
                  bookingId: state.bookingId,
                  customerId: state.customerId,
                  parts: state.parts,
                  labourMinutes: state.labourMinutes,
                  labourCost: state.labourCost,
                  partsCost: state.partsCost,
                },
              },
            ],
          };
        }
        case "COMPLETE": {
          const p = message.payload;
          if (state.status === "NEW") return refused("not_found", `no repair ${ctx.key}`);
          if (state.status === "COMPLETED") return { state, reply: accept(state) };
          if (state.status !== "TESTING") {
            return refused("invalid_transition", `a repair completes after TESTING; it is ${state.status}`);
          }
          const partsCost = p.parts.reduce((sum, part) => sum + part.quantity * part.unitPrice, 0);
          const labour = labourCost(p.labourMinutes);
          const s = next({
            status: "COMPLETED",
            progress: 100,
            parts: p.parts,
            labourMinutes: p.labourMinutes,
            labourCost: labour,
            partsCost,
            technicianId: p.technicianId,
            completedAt: now,
          });
          const facts = {
            repairId: ctx.key,
            bookingId: state.bookingId,
            customerId: state.customerId,
            parts: p.parts,
            labourMinutes: p.labourMinutes,
            labourCost: labour,
            partsCost,
          };
          return {
            ...s,
            emit: [emitted(topics, "REPAIR_COMPLETED", facts)],
            send: [{ to: refs.jobSaga(state.bookingId), type: "REPAIR_DONE", payload: facts }],
          };
        }
      }
    },
  });
}
