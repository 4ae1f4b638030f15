CREATE TABLE "daily_stat_delta" (
	"event_id" uuid NOT NULL,
	"day" text NOT NULL,
	"metric" text NOT NULL,
	"value" bigint NOT NULL,
	CONSTRAINT "daily_stat_delta_event_id_metric_pk" PRIMARY KEY("event_id","metric")
);
--> statement-breakpoint
CREATE INDEX "daily_stat_delta_day_idx" ON "daily_stat_delta" USING btree ("day");