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
    }
}
