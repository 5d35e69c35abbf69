import { describe, expect, it } from "vitest";
import { untilSettled } from "./settle";

function answers(...values: string[]) {
  const asked: number[] = [];
  let index = 0;
  const load = async () => {
    asked.push(index);
    return values[Math.min(index++, values.length - 1)] as string;
  };
  return { asked, load };
}

describe("untilSettled", () => {
  it("asks again after each wait until the answer settles", async () => {
    const { asked, load } = answers("live", "live", "ended", "live");
    const slept: number[] = [];
    const value = await untilSettled(load, (status) => status !== "live", [10, 20, 40, 80], async (ms) => {
      slept.push(ms);
    });
    expect(value).toBe("ended");
    expect(asked).toHaveLength(3);
    expect(slept).toEqual([10, 20]);
  });

  it("asks once when the first answer has settled", async () => {
    const { asked, load } = answers("ended");
    await expect(untilSettled(load, (status) => status !== "live", [10], async () => undefined)).resolves.toBe("ended");
    expect(asked).toHaveLength(1);
  });

  it("gives the last answer when the waits run out", async () => {
    const { asked, load } = answers("live");
    await expect(untilSettled(load, (status) => status !== "live", [1, 2], async () => undefined)).resolves.toBe("live");
    expect(asked).toHaveLength(3);
  });
});
