/**
 * The one timer a driver keeps for its core (DESIGN.md: "re-arms exactly one timer"): armed for the core's
 * earliest deadline, left alone while that deadline stays the same, cleared when the core has none.
 */
export class CoreTimer {
  private timer: NodeJS.Timeout | undefined;
  private at: number | undefined;

  /** `fire` runs when the deadline passes (the driver calls the core's handleTimeout and drains). */
  constructor(private readonly fire: () => void) {}

  /** Arms for `due` on the core's clock, `now` being the core's time at this moment; undefined disarms. */
  set(due: number | undefined, now: number): void {
    if (due === undefined) {
      this.clear();
      return;
    }
    if (this.timer && this.at === due) return;
    if (this.timer) clearTimeout(this.timer);
    this.at = due;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.at = undefined;
        this.fire();
      },
      Math.max(0, Math.ceil(due - now)),
    );
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.at = undefined;
  }
}
