import { TidewayError } from './tideway-error.js';

/** One thing wrong with a spec: the JSON path of the field (`source.table`) and what is wrong. */
export interface SpecProblem {
  readonly field: string;
  readonly problem: string;
}

/** A spec that is well-formed JSON of the right shape but cannot work; lists every problem at once. */
export class InvalidSpecError extends TidewayError {
  readonly problems: readonly SpecProblem[];

  constructor(problems: readonly SpecProblem[]) {
    const first = problems[0];
    super(
      'INVALID_SPEC',
      problems.length === 1 && first
        ? `invalid spec: ${first.field}: ${first.problem}`
        : `invalid spec: ${problems.length} problems`,
      { problems: [...problems] },
    );
    this.problems = problems;
  }
}
