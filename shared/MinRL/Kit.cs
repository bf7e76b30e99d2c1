using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MinRL;

/// <summary>Facts about the kit itself, and the engine it runs on.</summary>
public static class Kit
{
    /// <summary>The version of the shared kit; part of every cache key, so a change invalidates cached base models.
    /// Bump it whenever a change alters any bit of training (3: q, k, v projected separately).</summary>
    public const string Version = "3";

    /// <summary>The engine this build runs on: "TorchSharp" (libtorch, the default) or "MinTorch" (the book's
    /// managed engine), chosen at build time with <c>-p:Engine=...</c>. Both answer to
    /// <c>using TorchSharp;</c>.</summary>
    public static string Engine { get; } =
        typeof(torch).Assembly.GetName().Name == "MinTorch" ? "MinTorch" : "TorchSharp";

    /// <summary>Whether results are the same bit for bit on any thread count (MinTorch), or only at a given one
    /// (libtorch splits its reductions by thread).</summary>
    public static bool BitIdenticalAcrossThreads => Engine == "MinTorch";

    /// <summary>
    /// The thread count used when the user gives none. MinTorch: every core (its results do not depend on it).
    /// TorchSharp: one. The book's model is small (d = 64, 11 tokens), so a second libtorch thread buys nothing
    /// measurable, and when another process shares the cores libtorch's threads wait on each other: chapter 1
    /// ran 2.3× slower a step on 2 threads than on 1 beside one busy process (the README's engine section).
    /// </summary>
    public static int DefaultThreads => Engine == "MinTorch" ? Environment.ProcessorCount : 1;

    /// <summary>
    /// Loads the engine's native code for <paramref name="device"/> now, so that a missing or unloadable libtorch,
    /// or a device that is not there, is one clear message at start-up rather than an error from deep inside the
    /// first tensor operation. Throws <see cref="LabException"/> naming the cause and the fix.
    /// </summary>
    public static void InitializeEngine(ComputeDevice device)
    {
        try
        {
            if (Engine == "TorchSharp") LoadNativeLibraries();
            InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e)
        {
            throw new LabException(
                $"TorchSharp could not load libtorch: {Cause(e)}\n" +
                "  Fix: build again (`dotnet build -c Release` restores the libtorch package for this OS and, on " +
                "Debian 12 / Ubuntu 22.04, prepares libLibTorchSharp.so for the older libstdc++), or run on the " +
                "book's managed engine instead: add -p:Engine=MinTorch to the dotnet command.");
        }
        if (device == ComputeDevice.Cpu) return;
        bool available;
        try { available = TryInitializeDeviceType(DeviceType.CUDA) && cuda.is_available(); }
        catch (Exception) { available = false; }
        if (!available)
            throw new LabException(Engine == "MinTorch"
                ? "--device cuda: MinTorch computes on the CPU only. " +
                  "Use --device cpu, or build with TorchSharp's CUDA package (see the README, 'On a GPU')."
                : "--device cuda: no CUDA device is available to this build. " +
                  "It uses libtorch's CPU package; for a GPU, reference TorchSharp's CUDA package instead " +
                  "(see the README, 'On a GPU'), or use --device cpu.");
    }

    /// <summary>
    /// Loads libtorch and TorchSharp's native glue from the build output before TorchSharp tries, so that a failure
    /// names its real cause (the loader's own words, e.g. a missing libstdc++ version) in one line. Left to
    /// TorchSharp, a failure prints a page of probing trace and copies ~500 MB of natives into bin/…/cpu/ to retry.
    /// Does nothing where the natives are not laid out by runtime identifier (a published app): TorchSharp finds them.
    /// </summary>
    private static void LoadNativeLibraries()
    {
        string os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        string arch = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant();
        string dir = Path.Combine(AppContext.BaseDirectory, "runtimes", $"{os}-{arch}", "native");
        var (prefix, suffix) = os switch { "win" => ("", ".dll"), "osx" => ("lib", ".dylib"), _ => ("lib", ".so") };
        if (!Directory.Exists(dir)) return;
        foreach (var name in new[] { "torch_cpu", "LibTorchSharp" })          // libtorch first: the glue needs it
        {
            string path = Path.Combine(dir, prefix + name + suffix);
            if (!File.Exists(path))
                throw new FileNotFoundException($"{path} is missing: the libtorch package for {os}-{arch} did not " +
                                                "restore or was not copied into the build output");
            System.Runtime.InteropServices.NativeLibrary.Load(path);            // throws with the loader's message
        }
    }

    private static string Cause(Exception e)
    {
        while (e is TypeInitializationException && e.InnerException is not null) e = e.InnerException;
        var lines = e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // .NET's DllNotFoundException puts advice first and the loader's own words (dlerror) last.
        var line = (e is DllNotFoundException ? lines.LastOrDefault() : lines.FirstOrDefault()) ?? e.GetType().Name;
        return line.Length > 300 ? line[..300] + "…" : line;
    }
}

/// <summary>Gradient clipping as every chapter does it.</summary>
public static class Grad
{
    /// <summary>The global L2 norm of the gradients of <paramref name="parameters"/>, measured before clipping; when
    /// <paramref name="maxNorm"/> &gt; 0 the gradients are then scaled down to that norm (nn.utils.clip_grad_norm_,
    /// CleanRL's max_grad_norm). maxNorm = 0 only measures. Frozen parameters (requires_grad false) are left
    /// out.</summary>
    public static double ClipNorm(IEnumerable<Parameter> parameters, double maxNorm) =>
        nn.utils.clip_grad_norm_(parameters.Where(p => p.requires_grad),
                                 maxNorm > 0 ? maxNorm : double.PositiveInfinity);
}
