/**
 * The car service's actor kinds and reactors, registered with the runtime host. The domain (bookings, repairs,
 * invoices, the job saga and the reactors of the seed's event table) joins here.
 */
import type { AnyActorDefinition, ReactorDefinition } from "../runtime/index.ts";

export const actorKinds: AnyActorDefinition[] = [];
export const reactors: ReactorDefinition[] = [];
