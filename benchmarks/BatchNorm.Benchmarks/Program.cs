using BenchmarkDotNet.Running;

namespace BatchNorm.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project benchmarks/BatchNorm.Benchmarks -- --filter '*'</c>;
/// add <c>--job short</c> for a quick run. See benchmarks/README.md.
/// </summary>
public static class Program
{
    public static void Main(string[] args) =>
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, new BenchmarkConfig());
}
