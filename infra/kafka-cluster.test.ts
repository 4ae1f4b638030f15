import { describe, expect, test } from "bun:test";
import { brokerRss, clusterLayout, startKafka } from "./kafka-cluster.ts";

describe("the project's Kafka", () => {
  test("starting again reuses the running broker instead of starting a second one", async () => {
    const before = brokerRss(1);
    const result = await startKafka(1);
    expect(result).toEqual({ brokers: ["127.0.0.1:9092"], started: [], reused: [1] });
    expect(Object.keys(brokerRss(1))).toEqual(Object.keys(before));
  });

  test("the 3-broker layout has its own ports and data directories", () => {
    const triple = clusterLayout(3);
    expect(triple.brokers).toEqual(["127.0.0.1:19092", "127.0.0.1:19102", "127.0.0.1:19112"]);
    expect(new Set(triple.nodes.map((n) => n.dir)).size).toBe(3);
    expect(triple.nodes.map((n) => n.controllerPort)).toEqual([19093, 19103, 19113]);
  });
});
