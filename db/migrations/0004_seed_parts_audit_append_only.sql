-- The parts catalogue the service center starts with (prices in satang). Re-running changes nothing.
INSERT INTO "part" ("id", "name", "unit_price", "stock", "low_stock_threshold") VALUES
  ('OIL-5W30-4L', 'Engine oil 5W-30, 4 L', 120000, 200, 20),
  ('FILTER-OIL', 'Oil filter', 25000, 150, 15),
  ('FILTER-AIR', 'Air filter', 35000, 100, 10),
  ('BRAKE-PAD-F', 'Brake pads, front pair', 180000, 60, 8),
  ('BRAKE-PAD-R', 'Brake pads, rear pair', 160000, 60, 8),
  ('BRAKE-DISC', 'Brake disc', 250000, 30, 4),
  ('TIRE-205-55R16', 'Tire 205/55 R16', 320000, 80, 8),
  ('BATTERY-60AH', 'Battery 60 Ah', 450000, 25, 3),
  ('SPARK-PLUG', 'Spark plug', 18000, 300, 40),
  ('WIPER-BLADE', 'Wiper blade', 22000, 120, 12)
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
-- The audit trail is append-only: rows are never changed or removed.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END $$;
--> statement-breakpoint
DROP TRIGGER IF EXISTS audit_log_append_only ON "audit_log";
--> statement-breakpoint
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON "audit_log"
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
