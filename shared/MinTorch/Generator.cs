namespace TorchSharp;

public static partial class torch
{
    /// <summary>A pseudo-random number generator (xoshiro256** seeded through SplitMix64).</summary>
    /// <remarks>
    /// PyTorch uses a Mersenne Twister; MinTorch does not try to reproduce PyTorch's streams (the
    /// PyTorch fixtures carry their own inputs), only to be reproducible itself: the same seed gives
    /// the same numbers, bit for bit, on every run. Random ops always draw on the calling thread, in
    /// element order, so the thread count cannot change what they produce.
    /// </remarks>
    public sealed class Generator
    {
        private ulong s0, s1, s2, s3;
        private double? spareNormal;
        private long _seed;

        public Generator(ulong seed = 67280421310721UL) { manual_seed((long)seed); }

        /// <summary>Reseeds this generator and returns it (TorchSharp's signature).</summary>
        public Generator manual_seed(long seed)
        {
            _seed = seed;
            ulong x = (ulong)seed;
            s0 = SplitMix(ref x); s1 = SplitMix(ref x); s2 = SplitMix(ref x); s3 = SplitMix(ref x);
            spareNormal = null;
            return this;
        }

        public long initial_seed() => _seed;

        /// <summary>The generator's whole state (xoshiro words, the spare normal, the seed) as an int64 tensor.</summary>
        public Tensor get_state() => tensor(new long[]
        {
            (long)s0, (long)s1, (long)s2, (long)s3, spareNormal is null ? 0 : 1,
            BitConverter.DoubleToInt64Bits(spareNormal ?? 0), _seed,
        });

        /// <summary>Puts back a state from <see cref="get_state"/>.</summary>
        public void set_state(Tensor value)
        {
            if (value.dtype != ScalarType.Int64 || value.numel() != 7)
                throw new ArgumentException("Generator.set_state: expected the 7 int64 values get_state returns, " +
                                            $"got {value.dtype} with {value.numel()} elements");
            var w = value.data<long>().ToArray();
            (s0, s1, s2, s3) = ((ulong)w[0], (ulong)w[1], (ulong)w[2], (ulong)w[3]);
            spareNormal = w[4] != 0 ? BitConverter.Int64BitsToDouble(w[5]) : null;
            _seed = w[6];
        }

        private static ulong SplitMix(ref ulong x)
        {
            ulong z = x += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>The next 64 random bits.</summary>
        internal ulong NextUInt64()
        {
            ulong result = ulong.RotateLeft(s1 * 5, 7) * 9;
            ulong t = s1 << 17;
            s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3;
            s2 ^= t;
            s3 = ulong.RotateLeft(s3, 45);
            return result;
        }

        /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
        internal double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

        /// <summary>Uniform in [0, 1) with 24 random bits (every float32 value in the grid is reachable).</summary>
        internal float NextSingle() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

        /// <summary>Standard normal by the Box–Muller transform (computed in double, so both dtypes share it).</summary>
        internal double NextNormal()
        {
            if (spareNormal is double s) { spareNormal = null; return s; }
            double u1 = 1.0 - NextDouble(); // (0, 1]: log(u1) is finite
            double u2 = NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            spareNormal = r * Math.Sin(2 * Math.PI * u2);
            return r * Math.Cos(2 * Math.PI * u2);
        }

        /// <summary>Uniform integer in [low, high).</summary>
        internal long NextLong(long low, long high)
        {
            ulong range = (ulong)(high - low);
            // Lemire's method without bias: reject the low part of the range that would wrap unevenly.
            ulong threshold = (0 - range) % range;
            while (true)
            {
                ulong r = NextUInt64();
                UInt128 m = (UInt128)r * range;
                if ((ulong)m >= threshold) return low + (long)(ulong)(m >> 64);
            }
        }
    }

    [ThreadStatic] private static Generator? _defaultGenerator;

    /// <summary>The generator random ops use when none is passed. One per thread, so tests running
    /// side by side cannot disturb each other's streams.</summary>
    public static Generator default_generator => _defaultGenerator ??= new Generator();

    /// <summary>Seeds the default generator (of this thread) and returns it.</summary>
    public static Generator manual_seed(long seed) => default_generator.manual_seed(seed);

    public static partial class random
    {
        public static Generator manual_seed(long seed) => torch.manual_seed(seed);
        /// <summary>The default generator's state, to put back later with <see cref="set_rng_state"/>. TorchSharp
        /// returns libtorch's bytes; MinTorch an int64 tensor of its own state. Either is opaque to the caller.</summary>
        public static Tensor get_rng_state() => default_generator.get_state();
        /// <summary>Restores the default generator to a state from <see cref="get_rng_state"/>.</summary>
        public static void set_rng_state(Tensor new_state) => default_generator.set_state(new_state);
    }
}
