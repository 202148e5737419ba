using System;
using System.Linq;
using BenchmarkDotNet.Running;

namespace BatchNorm.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project benchmarks/BatchNorm.Benchmarks -- --filter '*'</c>;
/// add <c>--job short</c> for a quick run. <c>-- --alternate</c> runs the alternating harness
/// (<see cref="Alternating"/>) instead, and <c>-- --first-calls</c> times a fresh process's first calls
/// (<see cref="FirstCalls"/>). See benchmarks/README.md.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "--alternate")
        {
            return Alternating.Run(args.Skip(1).ToArray());
        }

        if (args.Length > 0 && args[0] == "--first-calls")
        {
            return FirstCalls.Run(args.Skip(1).ToArray());
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, new BenchmarkConfig());
        return 0;
    }
}
