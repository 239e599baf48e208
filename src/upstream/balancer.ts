/**
 * Smooth weighted round-robin (nginx's algorithm): every pick adds each target's weight to
 * its running score, takes the highest, and subtracts the total from the winner. Weights
 * 5,1,1 give a a b a c a a rather than a a a a a b c. Per worker; a later issue brings
 * least-request, consistent hashing and health.
 */
export class Balancer<T> {
  readonly #targets: T[]
  readonly #weights: number[]
  readonly #scores: number[]
  readonly #total: number

  constructor (targets: ReadonlyArray<{ target: T, weight: number }>) {
    this.#targets = targets.map((t) => t.target)
    this.#weights = targets.map((t) => t.weight)
    this.#scores = targets.map(() => 0)
    this.#total = this.#weights.reduce((a, b) => a + b, 0)
  }

  pick (): T {
    if (this.#targets.length === 1) return this.#targets[0] as T
    let best = 0
    for (let i = 0; i < this.#targets.length; i++) {
      this.#scores[i] = (this.#scores[i] as number) + (this.#weights[i] as number)
      if ((this.#scores[i] as number) > (this.#scores[best] as number)) best = i
    }
    this.#scores[best] = (this.#scores[best] as number) - this.#total
    return this.#targets[best] as T
  }
}
