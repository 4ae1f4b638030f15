ALTER TABLE "dead_letter" ADD COLUMN "error_code" text;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "source_group" text;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "source_topic" text;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "source_partition" integer;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "source_epoch" bigint;--> statement-breakpoint
CREATE INDEX "outbox_unpublished_source_idx" ON "outbox" USING btree ("source_group","source_topic","source_partition","id") WHERE "outbox"."published_at" is null;