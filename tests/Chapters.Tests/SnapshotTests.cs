namespace MinRL.Chapters.Tests;

public class SnapshotTests
{
    [Fact]
    public void Diff_shows_the_changed_line()
    {
        var d = Snapshot.Diff("{\n  \"a\": 1\n}\n", "{\n  \"a\": 2\n}\n");
        Assert.Contains("line 2:", d);
        Assert.Contains("- \"a\": 1", d);
        Assert.Contains("+ \"a\": 2", d);
    }

    [Fact]
    public void Matching_snapshot_passes_and_a_different_one_fails()
    {
        Snapshot.Match(new { loss = 0.1 + 0.2, steps = new[] { 1, 2 } });
        Assert.ThrowsAny<Exception>(() => Snapshot.Match(new { loss = 0.3, steps = new[] { 1, 2 } }, name: nameof(Matching_snapshot_passes_and_a_different_one_fails)));
        File.Delete(Path.Combine(Path.GetDirectoryName(ThisFile())!, "snapshots", "SnapshotTests.Matching_snapshot_passes_and_a_different_one_fails.received.json"));
    }

    private static string ThisFile([System.Runtime.CompilerServices.CallerFilePath] string f = "") => f;
}
