// Command-line options for the chapters.
//
// A chapter declares its hyper-parameters as one record, one documented line each:
//
//     public sealed record Args : LabArgs
//     {
//         [Help("learning rate of AdamW; CleanRL ppo.py uses 2.5e-4")]
//         public double LearningRate { get; init; } = 3e-4;
//     }
//
// and `Lab.Parse<Args>(argv, ...)` fills it from `--learning-rate 1e-4` or `--learning-rate=1e-4`
// (the option is the property's name in kebab-case). Types: int, long, double, float, string, bool
// (`--quick` alone means true; `--quick false` also works), enums (by name, any case, dashes
// allowed: `--mode dr-grpo`) and arrays of those (`--lambdas 0,0.95,1`); numbers always use '.'.
// Chapters read `args.StepsOr(quickSteps)` for the step count, so that `--quick --steps 50` runs 50.
// `--help` lists every option with its type, default and help line. Anything wrong — an unknown
// option, a value of the wrong type or out of range, a missing value — is a LabUsageException whose
// message says exactly what and how to fix it; `Lab.Run` prints it in one red line (no stack trace)
// and exits with code 2.
using System.Globalization;
using System.Reflection;
using System.Text;

namespace MinRL;

/// <summary>The help line of one option, shown by <c>--help</c>. Every public init property of an
/// Args record is an option; the attribute says what it means (and, where the value comes from a
/// paper or a reference implementation, which one).</summary>
[AttributeUsage(AttributeTargets.Property, Inherited = true)]
public sealed class HelpAttribute(string text) : Attribute
{
    public string Text { get; } = text;

    /// <summary>Smallest allowed value of a numeric option (inclusive); NaN = no bound.</summary>
    public double Min { get; set; } = double.NaN;

    /// <summary>Largest allowed value of a numeric option (inclusive); NaN = no bound.</summary>
    public double Max { get; set; } = double.NaN;
}

/// <summary>The options every chapter has. A chapter's own <c>Args</c> record derives from this and
/// may override <see cref="Steps"/> to give its own default:
/// <c>[Help("policy-gradient steps")] public override int Steps { get; init; } = 400;</c></summary>
public abstract record LabArgs
{
    [Help("training steps", Min = 1)]
    public virtual int Steps { get; init; } = 100;

    [Help("random seed (torch.manual_seed); the same seed reproduces a run bit for bit")]
    public long Seed { get; init; } = 1;

    [Help("a fast smoke run: the chapter shrinks its work to seconds (an explicit --steps still wins)")]
    public bool Quick { get; init; }

    [Help("output folder for metrics.csv, curves.svg and summary.json (--quick runs go to seed<seed>-quick)")]
    public string Out { get; init; } = "";

    [Help("CPU threads for the tensor engine; 0 = the engine's default (TorchSharp 1, MinTorch all cores)", Min = 0)]
    public int Threads { get; init; }

    [Help("where tensors live: cpu, or cuda (needs TorchSharp's CUDA package and an NVIDIA GPU)")]
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;

    // The options the user typed, by property name; lets a chapter tell "--steps 400" from the default.
    private HashSet<string> _given = [];

    /// <summary>True when the user set this option on the command line (pass <c>nameof(Steps)</c>).</summary>
    public bool IsGiven(string propertyName) => _given.Contains(propertyName);

    /// <summary>The step count to run: <paramref name="quickSteps"/> under <c>--quick</c>, unless the
    /// user also gave <c>--steps</c> explicitly; otherwise <see cref="Steps"/>.</summary>
    public int StepsOr(int quickSteps) => Quick && !IsGiven(nameof(Steps)) ? quickSteps : Steps;

    internal void MarkGiven(string propertyName) => _given = [.. _given, propertyName];

    // Two Args are equal when their options are (which ones were typed does not matter).
    public virtual bool Equals(LabArgs? other) =>
        other is not null && EqualityContract == other.EqualityContract && Steps == other.Steps && Seed == other.Seed
        && Quick == other.Quick && Out == other.Out && Threads == other.Threads && Device == other.Device;

    public override int GetHashCode() => HashCode.Combine(EqualityContract, Steps, Seed, Quick, Out, Threads, Device);
}

/// <summary>Bad command-line input (or <c>--help</c>): the message is for the user, verbatim.
/// <see cref="ExitCode"/> is 0 for <c>--help</c>, 2 for an error.</summary>
public sealed class LabUsageException(string message, int exitCode = 2) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    public bool IsHelp => ExitCode == 0;
}

/// <summary>A problem the user can act on, found while running (NaN in a loss, a corrupt checkpoint,
/// ...). <c>Lab.Run</c> prints the message without a stack trace and exits with code 1.</summary>
/// <summary>The devices <c>--device</c> names.</summary>
public enum ComputeDevice
{
    /// <summary>The CPU: every engine.</summary>
    Cpu,
    /// <summary>An NVIDIA GPU through libtorch's CUDA build (TorchSharp only).</summary>
    Cuda,
}

public class LabException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Reflection over an Args record: its options, how to parse and print them.</summary>
internal static class Options
{
    /// <summary>One option: the property, its <c>--kebab-name</c>, help line and default.</summary>
    internal sealed record Option(PropertyInfo Property, string Name, HelpAttribute? Help, object? Default)
    {
        public Type Type => Nullable.GetUnderlyingType(Property.PropertyType) ?? Property.PropertyType;
        public bool IsFlag => Type == typeof(bool);
    }

    /// <summary>The options of <typeparamref name="TArgs"/>: common ones (declared in LabArgs) first,
    /// then the chapter's, each in declaration order.</summary>
    internal static List<Option> Of<TArgs>() where TArgs : LabArgs, new() => Of(typeof(TArgs));

    /// <summary>The options of an Args type (it needs a public parameterless constructor).</summary>
    internal static List<Option> Of(Type argsType)
    {
        var defaults = Activator.CreateInstance(argsType)!;
        var chain = new List<Type>();
        for (var t = argsType; t != null && t != typeof(object); t = t.BaseType) chain.Insert(0, t);
        var seen = new HashSet<string>();
        var result = new List<Option>();
        foreach (var type in chain)
        {
            var props = type.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
                .OrderBy(p => p.MetadataToken);
            foreach (var p in props)
            {
                if (p.Name == "EqualityContract" || p.SetMethod is not { IsPublic: true }
                    || p.GetIndexParameters().Length > 0) continue;
                if (!seen.Add(p.Name)) continue; // an override keeps its base's place in the list
                result.Add(new Option(p, "--" + Kebab(p.Name), null, null));
            }
        }
        // Resolve help and default through the most derived property (an override may change both).
        return result.Select(o =>
        {
            var p = argsType.GetProperty(o.Property.Name, BindingFlags.Public | BindingFlags.Instance)!;
            var help = (HelpAttribute?)Attribute.GetCustomAttribute(p, typeof(HelpAttribute), inherit: true);
            return o with { Property = p, Help = help, Default = p.GetValue(defaults) };
        }).ToList();
    }

    /// <summary>LearningRate → learning-rate, KlCoef → kl-coef, GaeLambda → gae-lambda, Lr2 → lr2,
    /// ReinforcePlusPlusBaseline → reinforce++-baseline.</summary>
    internal static string Kebab(string name)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c))
            {
                bool afterLower = i > 0 && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1]));
                bool acronymEnd = i > 0 && char.IsUpper(name[i - 1])
                                  && i + 1 < name.Length && char.IsLower(name[i + 1]);
                if (afterLower || acronymEnd) sb.Append('-');
                sb.Append(char.ToLowerInvariant(c));
            }
            else sb.Append(c == '_' ? '-' : c);
        }
        return sb.ToString().Replace("-plus-plus", "++");                 // ReinforcePlusPlus → reinforce++
    }

    internal static TArgs Parse<TArgs>(string[] argv, string chapter, string description) where TArgs : LabArgs, new()
    {
        var options = Of<TArgs>();
        var byName = options.ToDictionary(o => o.Name, StringComparer.Ordinal);
        var args = new TArgs();
        var given = new HashSet<string>();

        // --help anywhere wins over any error elsewhere on the line (as in argparse).
        if (argv.Any(IsHelp)) throw new LabUsageException(HelpText(options, chapter, description), exitCode: 0);

        for (int i = 0; i < argv.Length; i++)
        {
            string token = argv[i];
            if (!token.StartsWith("--", StringComparison.Ordinal) || token.Length == 2)
                throw new LabUsageException(token.StartsWith('-')
                    ? $"unknown option '{token}': options are written --name (see --help)"
                    : $"unexpected argument '{token}': every option is written --name value (see --help)");

            string name = token;
            string? value = null;
            int eq = token.IndexOf('=');
            if (eq >= 0) { name = token[..eq]; value = token[(eq + 1)..]; }

            if (!byName.TryGetValue(name, out var option))
                throw new LabUsageException(Unknown(name, options));
            if (!given.Add(option.Name))
                throw new LabUsageException($"option {option.Name} is given twice; give it once");

            if (value is null)
            {
                if (option.IsFlag)
                {
                    // `--quick` alone means true; `--quick false` is also accepted.
                    if (i + 1 < argv.Length && IsBoolWord(argv[i + 1])) value = argv[++i];
                    else value = "true";
                }
                // A value may start with "--" only when it is a string with a space in it (compare's
                // --variants "--loss dpo; --loss kto"): an option's name never has one.
                else if (i + 1 < argv.Length && (!argv[i + 1].StartsWith("--", StringComparison.Ordinal)
                                                 || option.Property.PropertyType == typeof(string)
                                                    && argv[i + 1].Contains(' ')))
                    value = argv[++i];
                else
                    throw new LabUsageException($"option {option.Name} needs a value ({Describe(option.Type)}), " +
                                                $"but none was given; e.g. {option.Name} {Example(option)}");
            }

            object parsed = ParseValue(option, value);
            option.Property.SetValue(args, parsed);
            args.MarkGiven(option.Property.Name);
        }

        foreach (var option in options) CheckRange(option, option.Property.GetValue(args));
        if (args.Steps < 1) // whatever an override's [Help] says
            throw new LabUsageException($"bad value for --steps: {args.Steps} is below its minimum 1");
        if (args.Out.Length == 0)
            typeof(LabArgs).GetProperty(nameof(LabArgs.Out))!.SetValue(args, DefaultOut(chapter, args));
        return args;
    }

    /// <summary>runs/&lt;chapter&gt;/seed&lt;seed&gt;, or .../seed&lt;seed&gt;-quick for a smoke run (so it
    /// cannot overwrite a real one).</summary>
    internal static string DefaultOut(string chapter, LabArgs args) =>
        Path.Combine("runs", chapter,
                     $"seed{args.Seed.ToString(CultureInfo.InvariantCulture)}{(args.Quick ? "-quick" : "")}");

    private static bool IsHelp(string token) => token is "--help" or "-h" or "-?" or "/?";

    private static bool IsBoolWord(string s) =>
        s.Equals("true", StringComparison.OrdinalIgnoreCase) || s.Equals("false", StringComparison.OrdinalIgnoreCase);

    private static string Unknown(string name, List<Option> options)
    {
        string bare = name.TrimStart('-');
        var best = options
            .Select(o => (o.Name, d: EditDistance(bare, o.Name[2..]),
                          prefix: o.Name[2..].StartsWith(bare, StringComparison.Ordinal)))
            .OrderBy(x => x.prefix ? 0 : 1).ThenBy(x => x.d).First();
        bool close = best.prefix && bare.Length >= 2 || best.d <= Math.Max(2, bare.Length / 3);
        return close
            ? $"unknown option '{name}'. Did you mean '{best.Name}'? (see --help for every option)"
            : $"unknown option '{name}' (see --help for every option)";
    }

    /// <summary>Levenshtein distance: the fewest single-character edits from a to b.</summary>
    internal static int EditDistance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    private static object ParseValue(Option option, string text)
    {
        var t = option.Type;
        string Bad(string? why = null) =>
            $"bad value for {option.Name}: '{text}' is not {Describe(t)}{(why is null ? "" : $" ({why})")}; " +
            $"e.g. {option.Name} {Example(option)}";

        if (t.IsArray)
        {
            var elem = t.GetElementType()!;
            var parts = text.Length == 0 ? [] : text.Split(',', StringSplitOptions.TrimEntries);
            var arr = Array.CreateInstance(elem, parts.Length);
            for (int k = 0; k < parts.Length; k++)
            {
                try { arr.SetValue(ParseValue(option, elem, parts[k]), k); }
                catch (FormatException)
                {
                    throw new LabUsageException($"bad value for {option.Name}: '{parts[k]}' in '{text}' " +
                                                $"is not {Describe(elem)}; e.g. {option.Name} {Example(option)}");
                }
                catch (OverflowException)
                {
                    throw new LabUsageException($"bad value for {option.Name}: '{parts[k]}' in '{text}' " +
                                                $"is out of range for {Describe(elem)}");
                }
            }
            return arr;
        }
        try { return ParseValue(option, t, text); }
        catch (FormatException) { throw new LabUsageException(Bad()); }
        catch (OverflowException) { throw new LabUsageException(Bad("out of range")); }
    }

    private static object ParseValue(Option option, Type t, string text)
    {
        var inv = CultureInfo.InvariantCulture;
        if (t == typeof(string)) return text;
        if (t == typeof(int)) return int.Parse(text, NumberStyles.AllowLeadingSign, inv);
        if (t == typeof(long)) return long.Parse(text, NumberStyles.AllowLeadingSign, inv);
        if (t == typeof(double)) return double.Parse(text, NumberStyles.Float, inv);
        if (t == typeof(float)) return float.Parse(text, NumberStyles.Float, inv);
        if (t == typeof(bool))
        {
            if (text.Equals("true", StringComparison.OrdinalIgnoreCase)) return true;
            if (text.Equals("false", StringComparison.OrdinalIgnoreCase)) return false;
            throw new FormatException();
        }
        if (t.IsEnum)
        {
            // By name, case-insensitive, with or without dashes: "dr-grpo" and "DrGrpo" both name DrGrpo; "PlusPlus"
            // in a name is spelled "++" ("reinforce++-baseline" names ReinforcePlusPlusBaseline).
            string key = text.Replace("-", "").Replace("_", "");
            foreach (var n in Enum.GetNames(t))
                if (n.Replace("_", "").Replace("PlusPlus", "++").Equals(key, StringComparison.OrdinalIgnoreCase)
                    || n.Replace("_", "").Equals(key, StringComparison.OrdinalIgnoreCase))
                    return Enum.Parse(t, n);
            throw new FormatException();
        }
        throw new InvalidOperationException(
            $"option {option.Name}: options of type {t.Name} are not supported " +
            "(use int, long, double, float, bool, string, an enum or an array of those)");
    }

    private static void CheckRange(Option option, object? value)
    {
        if (option.Help is null || value is null || !IsNumber(option.Type)) return;
        double v = Convert.ToDouble(value, CultureInfo.InvariantCulture);
        string shown = Format(value);
        if (!double.IsNaN(option.Help.Min) && !(v >= option.Help.Min))
            throw new LabUsageException(
                $"bad value for {option.Name}: {shown} is below its minimum {Format(option.Help.Min)}");
        if (!double.IsNaN(option.Help.Max) && !(v <= option.Help.Max))
            throw new LabUsageException(
                $"bad value for {option.Name}: {shown} is above its maximum {Format(option.Help.Max)}");
    }

    private static bool IsNumber(Type t) =>
        t == typeof(int) || t == typeof(long) || t == typeof(double) || t == typeof(float);

    /// <summary>"an int (a whole number)", "a number", "one of: k1, k2, k3", ...</summary>
    internal static string Describe(Type t)
    {
        if (t == typeof(int)) return "an int (a whole number)";
        if (t == typeof(long)) return "a long (a whole number)";
        if (t == typeof(double) || t == typeof(float))
            return $"a {(t == typeof(float) ? "float" : "double")} (a number like 0.5 or 1e-4)";
        if (t == typeof(bool)) return "a bool (true or false)";
        if (t == typeof(string)) return "a string";
        if (t.IsEnum) return "one of: " + string.Join(", ", Enum.GetNames(t).Select(Kebab));
        if (t.IsArray) return "a comma-separated list of " + TypeName(t.GetElementType()!);
        return t.Name;
    }

    /// <summary>The short type shown in --help: int, double, k1|k2|k3, double,...</summary>
    internal static string TypeName(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (t.IsEnum) return string.Join("|", Enum.GetNames(t).Select(Kebab));
        if (t.IsArray) return TypeName(t.GetElementType()!) + ",...";
        return t == typeof(int) ? "int" : t == typeof(long) ? "long" : t == typeof(double) ? "double"
            : t == typeof(float) ? "float" : t == typeof(bool) ? "bool" : t == typeof(string) ? "string" : t.Name;
    }

    private static string Example(Option o) =>
        o.Default is { } d && !(d is string s && s.Length == 0) && !(d is Array { Length: 0 }) ? Format(d)
        : o.Type.IsEnum ? Kebab(Enum.GetNames(o.Type)[0])
        : o.Type.IsArray ? "1,2,3"
        : o.Type == typeof(string) ? "text" : "1";

    /// <summary>A value as the user would type it (invariant culture, enums in kebab-case).</summary>
    internal static string Format(object? value) => value switch
    {
        null => "none",
        string s => s.Length == 0 ? "\"\"" : s,
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        Enum e => Kebab(e.ToString()),
        Array a => string.Join(",", a.Cast<object?>().Select(Format)),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    internal static string HelpText(List<Option> options, string chapter, string description)
    {
        var sb = new StringBuilder();
        sb.Append(chapter);
        if (!string.IsNullOrWhiteSpace(description)) sb.Append(" — ").Append(description);
        sb.AppendLine().AppendLine();
        sb.AppendLine($"usage: dotnet run --project {chapter} -- [options]");
        sb.AppendLine();
        var rows = options.Select(o => (
            left: o.IsFlag ? o.Name : $"{o.Name} <{TypeName(o.Type)}>",
            def: o.Property.Name == nameof(LabArgs.Out) && o.Default is ""
                ? $"runs/{chapter}/seed<seed>" : Format(o.Default),
            help: o.Help?.Text ?? ""))
            .Append((left: "-h, --help", def: "", help: "show this help and exit"))
            .ToList();
        int w1 = rows.Max(r => r.left.Length), w2 = Math.Max("default".Length, rows.Max(r => r.def.Length));
        sb.AppendLine($"  {"option".PadRight(w1)}  {"default".PadRight(w2)}  meaning");
        foreach (var (left, def, help) in rows)
            sb.AppendLine($"  {left.PadRight(w1)}  {def.PadRight(w2)}  {help}".TrimEnd());
        sb.AppendLine();
        sb.Append("Values use '.' for decimals; --name value and --name=value both work.");
        return sb.ToString();
    }
}
