CREATE TABLE "ops_audit" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"namespace" text NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"who" text NOT NULL,
	"action" text NOT NULL,
	"target" jsonb NOT NULL,
	"outcome" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "partition_pause" (
	"group_id" text NOT NULL,
	"topic" text NOT NULL,
	"partition" integer NOT NULL,
	"paused_by" text NOT NULL,
	"reason" text,
	"paused_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "partition_pause_group_id_topic_partition_pk" PRIMARY KEY("group_id","topic","partition")
);
--> statement-breakpoint
CREATE TABLE "process_report" (
	"id" text PRIMARY KEY NOT NULL,
	"namespace" text NOT NULL,
	"role" text NOT NULL,
	"version" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"seen_at" timestamp with time zone NOT NULL,
	"report" jsonb NOT NULL
);
--> statement-breakpoint
ALTER TABLE "dead_letter" ADD COLUMN "skipped_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "dead_letter" ADD COLUMN "skipped_by" text;--> statement-breakpoint
ALTER TABLE "dead_letter" ADD COLUMN "skip_reason" text;--> statement-breakpoint
CREATE INDEX "ops_audit_namespace_idx" ON "ops_audit" USING btree ("namespace","id");