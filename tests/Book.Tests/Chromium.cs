using System.Collections.Concurrent;
using System.Diagnostics;

namespace MinRL.Book.Tests;

/// <summary>
/// One headless Chromium process with a throw-away profile, and the DevTools connection to it. Disposing it closes
/// the browser (killing it if it does not go) and deletes the profile.
/// </summary>
sealed class Chromium : IAsyncDisposable
{
    /// <summary>The names the browser goes by on Linux distributions; Debian's package installs `chromium`.</summary>
    static readonly string[] Names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

    readonly Process process;
    readonly string profile;
    public Cdp Cdp { get; }

    Chromium(Process process, string profile, Cdp cdp) => (this.process, this.profile, Cdp) = (process, profile, cdp);

    public static async Task<Chromium> StartAsync(TimeSpan timeout)
    {
        var exe = FindOnPath() ?? throw new InvalidOperationException(
            $"Chromium is not installed: none of {string.Join(", ", Names)} is on PATH. The book's browser test needs "
            + "it: `apt-get install -y chromium` (Debian; .ci/run installs it where it is missing).");
        var profile = Directory.CreateTempSubdirectory("book-chromium-").FullName;
        var start = new ProcessStartInfo(exe)
        {
            UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        // --no-sandbox: Chromium refuses to run as root with its sandbox (CI runs as root). Port 0 lets it pick a
        // free port, which it writes to DevToolsActivePort in the profile. Nothing here needs the network.
        string[] args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                         "--disable-background-networking", "--disable-sync", "--mute-audio",
                         "--remote-debugging-port=0", $"--user-data-dir={profile}", "about:blank"];
        foreach (var arg in args) start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {exe}");
        // Read its output as it comes, so a full pipe never blocks it, and keep the end for error messages.
        var output = new ConcurrentQueue<string>();
        void Keep(object sender, DataReceivedEventArgs e)
        {
            if (e.Data == null) return;
            output.Enqueue(e.Data);
            while (output.Count > 40) output.TryDequeue(out var _);
        }
        process.OutputDataReceived += Keep;
        process.ErrorDataReceived += Keep;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            var endpoint = await WaitForEndpoint(process, profile, output, timeout, cts.Token);
            var cdp = await Cdp.ConnectAsync(endpoint, cts.Token);
            return new Chromium(process, profile, cdp);
        }
        catch (Exception)
        {
            Stop(process);
            DeleteProfile(profile);
            throw;
        }
    }

    /// <summary>Waits until Chromium has written its DevTools port and browser path (two lines) to the profile.
    /// </summary>
    static async Task<Uri> WaitForEndpoint(Process process, string profile, ConcurrentQueue<string> output,
        TimeSpan timeout, CancellationToken ct)
    {
        var file = Path.Combine(profile, "DevToolsActivePort");
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException(
                    $"Chromium exited (code {process.ExitCode}) before opening its DevTools port; its output:\n"
                    + string.Join("\n", output));
            if (ct.IsCancellationRequested)
                throw new TimeoutException(
                    $"Chromium did not open its DevTools port within {timeout.TotalSeconds} s; its output:\n"
                    + string.Join("\n", output));
            // The file may be half written when first seen: take it once both lines are there.
            var lines = File.Exists(file) ? await ReadShared(file) : [];
            if (lines.Length >= 2 && int.TryParse(lines[0], out var port) && lines[1].StartsWith('/'))
                return new Uri($"ws://127.0.0.1:{port}{lines[1].Trim()}");
            await Task.Delay(50, CancellationToken.None);
        }
    }

    static async Task<string[]> ReadShared(string file)
    {
        try { return await File.ReadAllLinesAsync(file); }
        catch (IOException) { return []; }
    }

    static string? FindOnPath()
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator);
        return Names.SelectMany(name => dirs.Select(dir => Path.Combine(dir, name))).FirstOrDefault(File.Exists);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            // Ask politely first, so the browser can remove its own files; then make sure it is gone.
            using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await Cdp.SendAsync("Browser.close", null, null, quick.Token);
            await process.WaitForExitAsync(quick.Token);
        }
        catch (Exception) { } // it did not close in time, or the connection was gone: Stop kills it
        await Cdp.DisposeAsync();
        Stop(process);
        DeleteProfile(profile);
    }

    /// <summary>Kills this browser process and its children (renderers, GPU, zygote), by its own process id.</summary>
    static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(5000);
        }
        catch (InvalidOperationException) { } // it had already exited
        process.Dispose();
    }

    static void DeleteProfile(string profile)
    {
        // A child that is still exiting may hold files for a moment: try a few times, then leave it to the OS.
        for (var attempt = 0; attempt < 5 && Directory.Exists(profile); attempt++)
        {
            try { Directory.Delete(profile, recursive: true); }
            catch (IOException) { Thread.Sleep(200); }
            catch (UnauthorizedAccessException) { Thread.Sleep(200); }
        }
    }
}
