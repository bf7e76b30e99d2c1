namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // Sampling. Every draw comes from the generator on the calling thread, in a fixed order (row by
        // row, sample by sample), so a seed fixes the result whatever the thread count. MinTorch's
        // generator is not PyTorch's Mersenne Twister: the same seed gives different (but equally
        // distributed) samples than PyTorch.
        // =====================================================================================

        /// <summary>
        /// Draws <paramref name="num_samples"/> category indices (int64) from each row of unnormalised, non-negative
        /// weights: a 1-D tensor of n weights gives shape (num_samples), a 2-D (rows, n) tensor gives (rows, num_samples).
        /// </summary>
        /// <remarks>
        /// With replacement each draw is independent: a uniform u ∈ [0, Σw) is located in the running sums of
        /// the weights (binary search). Without replacement the draws are sequential, as in PyTorch: each one
        /// samples from the weights still left and then removes the chosen category, so a row never repeats an
        /// index. That costs O(num_samples · n), fine for the vocabularies in this book.
        /// </remarks>
        public Tensor multinomial(long num_samples, bool replacement = false, Generator? generator = null)
        {
            if (!IsFloat) throw new ArgumentException($"multinomial: expected a floating-point tensor of weights, got {_dtype}");
            if (Rank is 0 or > 2) throw new ArgumentException($"multinomial: expected a 1-D or 2-D tensor of weights, got shape {ShapeString}");
            if (num_samples <= 0) throw new ArgumentException($"multinomial: num_samples must be positive, got {num_samples}");
            int rows = Rank == 1 ? 1 : (int)_shape[0], n = (int)_shape[^1];
            if (n == 0) throw new ArgumentException($"multinomial: there are no categories to sample from (shape {ShapeString})");
            if (!replacement && num_samples > n)
                throw new ArgumentException($"multinomial: cannot draw {num_samples} samples without replacement from {n} categories");
            int k = (int)num_samples;
            var gen = generator ?? default_generator;
            var result = new long[rows * k];
            var w = new double[n];
            for (int r = 0; r < rows; r++)
            {
                string row = Rank == 1 ? "the weights" : $"row {r}";
                int positive = 0;
                for (int i = 0; i < n; i++)
                {
                    double v = GetDouble(r * n + i);
                    if (!double.IsFinite(v)) throw new ArgumentException($"multinomial: {row} contains {v} at index {i}; weights must be finite");
                    if (v < 0) throw new ArgumentException($"multinomial: {row} has a negative weight ({v} at index {i}); weights must be non-negative");
                    if (v > 0) positive++;
                    w[i] = v;
                }
                if (positive == 0) throw new ArgumentException($"multinomial: {row} sums to zero (all {n} weights are 0), so there is nothing to sample");
                if (!replacement && positive < k)
                    throw new ArgumentException($"multinomial: {row} has only {positive} categories with positive weight, so {k} samples cannot be drawn without replacement");

                var samples = result.AsSpan(r * k, k);
                if (replacement) DrawWithReplacement(w, samples, gen);
                else DrawWithoutReplacement(w, samples, gen);
            }
            return new Tensor(result, Rank == 1 ? [num_samples] : [rows, num_samples], ScalarType.Int64);
        }

        /// <summary>Inverse-CDF sampling: c[i] = w[0] + … + w[i]; the sample is the first i with c[i] &gt; u, u uniform in [0, c[n−1]).
        /// A zero weight adds nothing to the running sum, so its category can never be the first to exceed u.</summary>
        private static void DrawWithReplacement(double[] w, Span<long> samples, Generator gen)
        {
            int n = w.Length;
            var c = new double[n];
            double acc = 0;
            for (int i = 0; i < n; i++) c[i] = acc += w[i];
            for (int s = 0; s < samples.Length; s++)
            {
                double u = gen.NextDouble() * acc;
                int lo = 0, hi = n - 1;
                while (lo < hi) { int mid = (lo + hi) >> 1; if (c[mid] > u) hi = mid; else lo = mid + 1; }
                if (!(c[lo] > u)) lo = LastPositive(w); // u rounded up to the total
                samples[s] = lo;
            }
        }

        /// <summary>One category at a time from the weights that are left; the chosen weight is then set to 0.</summary>
        private static void DrawWithoutReplacement(double[] w, Span<long> samples, Generator gen)
        {
            for (int s = 0; s < samples.Length; s++)
            {
                double total = 0;
                foreach (var v in w) total += v;
                double u = gen.NextDouble() * total, acc = 0;
                int pick = -1;
                for (int i = 0; i < w.Length; i++)
                {
                    if (w[i] == 0) continue;
                    acc += w[i];
                    if (acc > u) { pick = i; break; }
                }
                if (pick < 0) pick = LastPositive(w);
                samples[s] = pick;
                w[pick] = 0;
            }
        }

        private static int LastPositive(double[] w)
        {
            for (int i = w.Length - 1; i >= 0; i--) if (w[i] > 0) return i;
            throw new InvalidOperationException("internal: multinomial found no positive weight");
        }

        /// <summary>0/1 samples (same dtype and shape) with P(1) = this tensor's element, which must lie in [0, 1].</summary>
        public Tensor bernoulli(Generator? generator = null)
        {
            if (!IsFloat) throw new ArgumentException($"bernoulli: expected a floating-point tensor of probabilities, got {_dtype}");
            for (int i = 0; i < _numel; i++)
            {
                double p = GetDouble(i);
                if (!(p >= 0 && p <= 1)) throw new ArgumentException($"bernoulli: probabilities must be in [0, 1], got {p} at index {i}");
            }
            var gen = generator ?? default_generator;
            var y = Empty(_shape, _dtype);
            if (_dtype == ScalarType.Float32)
            {
                var P = Arr<float>(); var Y = y.Arr<float>();
                for (int i = 0; i < _numel; i++) Y[i] = gen.NextDouble() < P[i] ? 1f : 0f;
            }
            else
            {
                var P = Arr<double>(); var Y = y.Arr<double>();
                for (int i = 0; i < _numel; i++) Y[i] = gen.NextDouble() < P[i] ? 1.0 : 0.0;
            }
            return y;
        }
    }

    /// <summary>See <see cref="Tensor.multinomial"/>.</summary>
    public static Tensor multinomial(Tensor input, long num_samples, bool replacement = false, Generator? generator = null)
        => input.multinomial(num_samples, replacement, generator);

    /// <summary>See <see cref="Tensor.bernoulli"/>.</summary>
    public static Tensor bernoulli(Tensor input, Generator? generator = null) => input.bernoulli(generator);
}
