using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using BatchNorm.Kernels;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

/// <summary>
/// The helper threads behind every partitioned kernel: each part runs exactly once whatever the thread count, failures
/// reach the caller, and calls that cannot have the helpers (nested, concurrent) still run every part.
/// </summary>
[Trait("Category", "Kernels")]
public class WorkerPoolTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 4)]
    [InlineData(7, 2)]
    [InlineData(100, 2)]
    [InlineData(1000, 3)]
    [InlineData(64, 16)]
    public void Every_part_runs_exactly_once(int parts, int degree)
    {
        int[] runs = new int[parts];
        for (int repeat = 0; repeat < 20; repeat++)
        {
            Array.Clear(runs);
            Partition.For(parts, degree, new CountRuns(runs));
            runs.Should().OnlyContain(r => r == 1, $"{parts} parts on {degree} threads, call {repeat}");
        }
    }

    [Fact]
    public void Parts_run_on_helper_threads_when_there_are_cores()
    {
        if (Environment.ProcessorCount < 2)
        {
            return; // one core: no helpers by design (MaxHelpers is 0)
        }

        // Each part waits (bounded) until another thread has also entered a part: only possible if two threads run parts.
        // Another test may hold the helpers for a moment, so several calls are allowed to find them busy.
        bool sawTwo = false;
        for (int attempt = 0; attempt < 10 && !sawTwo; attempt++)
        {
            var meeting = new Meeting();
            Partition.For(2, 2, new MeetAnother(meeting));
            sawTwo = meeting.Threads == 2;
        }

        sawTwo.Should().BeTrue("two parts on two threads should meet on two different threads");
    }

    [Fact]
    public void A_failing_part_throws_to_the_caller_after_every_thread_stopped()
    {
        int[] runs = new int[50];
        Action call = () => Partition.For(50, 2, new FailAt(runs, 17));
        call.Should().Throw<InvalidOperationException>().WithMessage("part 17");
        runs[17].Should().Be(1);
        runs.Should().OnlyContain(r => r <= 1);

        // The pool is usable again afterwards.
        int[] again = new int[30];
        Partition.For(30, 2, new CountRuns(again));
        again.Should().OnlyContain(r => r == 1);
    }

    [Fact]
    public void A_part_that_partitions_again_runs_its_inner_parts_on_its_own_thread()
    {
        int[] inner = new int[4 * 10];
        Partition.For(4, 2, new Nested(inner));
        inner.Should().OnlyContain(r => r == 1);
    }

    [Fact]
    public void Concurrent_callers_each_run_all_their_parts()
    {
        int[][] runs = Enumerable.Range(0, 8).Select(_ => new int[200]).ToArray();
        Parallel.For(0, runs.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int repeat = 0; repeat < 10; repeat++)
            {
                Partition.For(200, 2, new CountRuns(runs[i]));
            }
        });
        runs.Should().OnlyContain(r => r.All(count => count == 10));
    }

    private readonly struct CountRuns(int[] runs) : IPartBody
    {
        public void Invoke(int part) => Interlocked.Increment(ref runs[part]);
    }

    private readonly struct FailAt(int[] runs, int failing) : IPartBody
    {
        public void Invoke(int part)
        {
            Interlocked.Increment(ref runs[part]);
            if (part == failing)
            {
                throw new InvalidOperationException($"part {part}");
            }
        }
    }

    private readonly struct Nested(int[] inner) : IPartBody
    {
        public void Invoke(int part) => Partition.For(10, 2, new Offset(inner, part * 10));
    }

    private readonly struct Offset(int[] runs, int start) : IPartBody
    {
        public void Invoke(int part) => Interlocked.Increment(ref runs[start + part]);
    }

    private sealed class Meeting
    {
        private int first = -1;

        public int Threads { get; private set; } = 1;

        public void Arrive()
        {
            int id = Environment.CurrentManagedThreadId;
            if (Interlocked.CompareExchange(ref first, id, -1) == -1)
            {
                // First to arrive: wait up to a second for someone else.
                SpinWait.SpinUntil(() => Threads == 2, 1000);
                return;
            }

            if (Volatile.Read(ref first) != id)
            {
                Threads = 2;
            }
        }
    }

    private readonly struct MeetAnother(Meeting meeting) : IPartBody
    {
        public void Invoke(int part) => meeting.Arrive();
    }
}
