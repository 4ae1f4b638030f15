CREATE TABLE "actor_timer" (
	"kind" text NOT NULL,
	"actor_key" text NOT NULL,
	"name" text NOT NULL,
	"mailbox" text NOT NULL,
	"partition" integer NOT NULL,
	"fire_at" timestamp with time zone NOT NULL,
	"message_type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"correlation_id" uuid NOT NULL,
	CONSTRAINT "actor_timer_kind_actor_key_name_pk" PRIMARY KEY("kind","actor_key","name")
);
--> statement-breakpoint
CREATE TABLE "dead_letter" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"consumer" text NOT NULL,
	"source_topic" text NOT NULL,
	"source_partition" integer NOT NULL,
	"source_offset" bigint NOT NULL,
	"message_key" text,
	"value" "bytea",
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"error_class" text NOT NULL,
	"error_message" text NOT NULL,
	"retryable" boolean NOT NULL,
	"attempts" integer NOT NULL,
	"first_failure_at" timestamp with time zone NOT NULL,
	"last_failure_at" timestamp with time zone NOT NULL,
	"host" text NOT NULL,
	"status" text NOT NULL,
	"replayed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "outbox" ALTER COLUMN "value" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "actor_state" ADD COLUMN "parked_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "raw_value" "bytea";--> statement-breakpoint
CREATE INDEX "actor_timer_due_idx" ON "actor_timer" USING btree ("kind","partition","fire_at");--> statement-breakpoint
CREATE UNIQUE INDEX "dead_letter_source_idx" ON "dead_letter" USING btree ("consumer","source_topic","source_partition","source_offset");--> statement-breakpoint
CREATE INDEX "dead_letter_key_idx" ON "dead_letter" USING btree ("consumer","message_key","id");