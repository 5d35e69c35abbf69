// Some changes show a moment after the API accepts them: ending a session turns the meeting from live
// only once the provider's webhook lands. Ask again, waiting longer each time, until the answer shows the
// change or the waits run out (then the last answer is what there is).

const pause = (ms: number) => new Promise<void>((resolve) => window.setTimeout(resolve, ms));

export async function untilSettled<T>(
  load: () => Promise<T>,
  settled: (value: T) => boolean,
  waits: number[],
  sleep: (ms: number) => Promise<void> = pause,
): Promise<T> {
  let value = await load();
  for (const wait of waits) {
    if (settled(value)) break;
    await sleep(wait);
    value = await load();
  }
  return value;
}
