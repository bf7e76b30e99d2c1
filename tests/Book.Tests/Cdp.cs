using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;

namespace MinRL.Book.Tests;

/// <summary>
/// A minimal Chrome DevTools Protocol client: JSON commands over one WebSocket to the browser's endpoint. Tabs are
/// reached through flattened sessions (a message for a tab carries its sessionId), replies are matched to commands
/// by id, and events go to whoever listens to <see cref="Event"/>.
/// </summary>
sealed class Cdp : IAsyncDisposable
{
    readonly ClientWebSocket socket = new();
    readonly ConcurrentDictionary<int, (string Method, TaskCompletionSource<JsonElement> Reply)> pending = new();
    readonly SemaphoreSlim sending = new(1, 1);
    readonly CancellationTokenSource stop = new();
    Task receiving = Task.CompletedTask;
    int lastId;

    /// <summary>Every event the browser sends: its method, its sessionId (null for the browser itself) and its
    /// params. Called on the receiving loop, so a listener must be quick.</summary>
    public event Action<string, string?, JsonElement>? Event;

    public static async Task<Cdp> ConnectAsync(Uri endpoint, CancellationToken ct)
    {
        var cdp = new Cdp();
        await cdp.socket.ConnectAsync(endpoint, ct);
        cdp.receiving = Task.Run(cdp.ReceiveLoop);
        return cdp;
    }

    /// <summary>Sends one command and waits for its reply's result; a protocol error becomes an exception.</summary>
    public async Task<JsonElement> SendAsync(string method, object? parameters, string? sessionId,
        CancellationToken ct)
    {
        var id = Interlocked.Increment(ref lastId);
        var reply = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[id] = (method, reply);
        var message = new Dictionary<string, object> { ["id"] = id, ["method"] = method,
                                                       ["params"] = parameters ?? new { } };
        if (sessionId != null) message["sessionId"] = sessionId;
        var bytes = JsonSerializer.SerializeToUtf8Bytes(message);
        try
        {
            await sending.WaitAsync(ct);
            try { await socket.SendAsync(bytes, WebSocketMessageType.Text, true, ct); }
            finally { sending.Release(); }
            return await reply.Task.WaitAsync(ct);
        }
        finally { pending.TryRemove(id, out _); }
    }

    async Task ReceiveLoop()
    {
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                var part = await socket.ReceiveAsync(buffer, stop.Token);
                if (part.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, part.Count);
                if (!part.EndOfMessage) continue;
                Dispatch(message.ToArray());
                message.SetLength(0);
            }
            FailPending(new InvalidOperationException("Chromium closed the DevTools connection"));
        }
        catch (Exception e)
        {
            FailPending(new InvalidOperationException("the DevTools connection to Chromium broke: " + e.Message, e));
        }
    }

    void Dispatch(byte[] json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        if (root.TryGetProperty("id", out var idProperty))
        {
            if (!pending.TryGetValue(idProperty.GetInt32(), out var call)) return;
            if (root.TryGetProperty("error", out var error))
                call.Reply.TrySetException(new CdpException(
                    $"DevTools command {call.Method} failed: {error.GetProperty("message").GetString()}"));
            else
                call.Reply.TrySetResult(root.TryGetProperty("result", out var result) ? result.Clone() : default);
            return;
        }
        if (root.TryGetProperty("method", out var method))
        {
            var sessionId = root.TryGetProperty("sessionId", out var s) ? s.GetString() : null;
            var parameters = root.TryGetProperty("params", out var p) ? p.Clone() : default;
            Event?.Invoke(method.GetString()!, sessionId, parameters);
        }
    }

    void FailPending(Exception e)
    {
        foreach (var call in pending.Values) call.Reply.TrySetException(e);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (socket.State == WebSocketState.Open)
            {
                using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, quick.Token);
            }
        }
        catch (Exception) { } // the browser may already be gone; nothing to close then
        stop.Cancel();
        try { await receiving; } catch (Exception) { } // the loop reports its own end through FailPending
        socket.Dispose();
        stop.Dispose();
    }
}

/// <summary>The browser answered a command with an error (the connection itself is fine).</summary>
sealed class CdpException(string message) : Exception(message);
