namespace MinRL;

/// <summary>Facts about the kit itself.</summary>
public static class Kit
{
    /// <summary>The version of the shared kit; part of every cache key, so a change invalidates cached base models.
    /// Bump it whenever a change alters any bit of training (3: q, k, v projected separately).</summary>
    public const string Version = "3";
}
