CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"event_id" uuid NOT NULL,
	"event_type" text NOT NULL,
	"topic" text NOT NULL,
	"partition" integer NOT NULL,
	"offset" bigint NOT NULL,
	"entity_id" text NOT NULL,
	"correlation_id" uuid NOT NULL,
	"causation_id" uuid,
	"occurred_at" timestamp with time zone NOT NULL,
	"payload" jsonb NOT NULL,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "daily_stat" (
	"day" text NOT NULL,
	"metric" text NOT NULL,
	"value" bigint NOT NULL,
	CONSTRAINT "daily_stat_day_metric_pk" PRIMARY KEY("day","metric")
);
--> statement-breakpoint
CREATE TABLE "gateway_charge" (
	"id" uuid PRIMARY KEY NOT NULL,
	"idempotency_key" text NOT NULL,
	"reference" text NOT NULL,
	"amount" integer NOT NULL,
	"currency" text NOT NULL,
	"card_token" text NOT NULL,
	"status" text NOT NULL,
	"reason" text,
	"calls" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"refunded_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "idempotent_request" (
	"principal" text NOT NULL,
	"key" text NOT NULL,
	"route" text NOT NULL,
	"request_hash" text NOT NULL,
	"status_code" integer,
	"response" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "idempotent_request_principal_key_route_pk" PRIMARY KEY("principal","key","route")
);
--> statement-breakpoint
CREATE TABLE "notification" (
	"id" uuid PRIMARY KEY NOT NULL,
	"source_event_id" uuid NOT NULL,
	"source_event_type" text NOT NULL,
	"channel" text NOT NULL,
	"customer_id" text NOT NULL,
	"template" text NOT NULL,
	"subject" text NOT NULL,
	"body" text NOT NULL,
	"correlation_id" uuid NOT NULL,
	"sent_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "part" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"unit_price" integer NOT NULL,
	"stock" integer NOT NULL,
	"low_stock_threshold" integer NOT NULL,
	"low_stock" boolean DEFAULT false NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "part_movement" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"part_id" text NOT NULL,
	"event_id" uuid NOT NULL,
	"repair_id" text,
	"quantity" integer NOT NULL,
	"shortfall" integer DEFAULT 0 NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "audit_log_event_idx" ON "audit_log" USING btree ("event_id");--> statement-breakpoint
CREATE INDEX "audit_log_correlation_idx" ON "audit_log" USING btree ("correlation_id");--> statement-breakpoint
CREATE UNIQUE INDEX "gateway_charge_key_idx" ON "gateway_charge" USING btree ("idempotency_key");--> statement-breakpoint
CREATE UNIQUE INDEX "notification_source_channel_idx" ON "notification" USING btree ("source_event_id","channel");--> statement-breakpoint
CREATE INDEX "notification_customer_idx" ON "notification" USING btree ("customer_id","sent_at");--> statement-breakpoint
CREATE UNIQUE INDEX "part_movement_event_idx" ON "part_movement" USING btree ("event_id","part_id");--> statement-breakpoint
CREATE INDEX "actor_state_customer_idx" ON "actor_state" USING btree ("kind",("state"->>'customerId'));