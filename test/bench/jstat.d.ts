/** The part of jstat (no types of its own, none on DefinitelyTyped) the benchmarks use. */
declare module 'jstat' {
  const jstat: {
    readonly jStat: {
      /** Student's t distribution. */
      readonly studentt: {
        /** The quantile function: the t with P(T ≤ t) = `p` for `dof` degrees of freedom. */
        inv(p: number, dof: number): number;
      };
    };
  };
  export default jstat;
}
