using System;
using System.Runtime.InteropServices;

namespace BatchNorm.Tests.Kernels;

/// <summary>
/// Memory placed right against an inaccessible page, so that a kernel reading or writing one element past the end
/// (or before the start) of its span faults at once instead of silently reading a neighbour. On Linux the pages come
/// from mmap with PROT_NONE guards; elsewhere, from a padded managed array whose sentinels are checked on dispose.
/// </summary>
internal sealed unsafe class GuardedBuffer<T> : IDisposable
    where T : unmanaged
{
    private const int ProtNone = 0;
    private const int ProtReadWrite = 3;
    private const int MapPrivateAnonymous = 0x02 | 0x20;
    private const int Padding = 64;

    private readonly nint _mapping;
    private readonly nuint _mappingLength;
    private readonly T* _start;
    private readonly T[]? _managed;

    /// <param name="length">Elements.</param>
    /// <param name="guardAfter">True: the span ends at a guard page; false: it starts right after one.</param>
    public GuardedBuffer(int length, bool guardAfter)
    {
        Length = length;
        if (OperatingSystem.IsLinux())
        {
            nuint page = (nuint)Environment.SystemPageSize;
            nuint bytes = (nuint)(length * sizeof(T));
            nuint dataPages = (bytes + page - 1) / page;
            _mappingLength = (dataPages + 2) * page;
            _mapping = LibC.mmap(0, _mappingLength, ProtReadWrite, MapPrivateAnonymous, -1, 0);
            if (_mapping == -1)
            {
                throw new InvalidOperationException("mmap failed");
            }

            byte* basePtr = (byte*)_mapping;
            if (LibC.mprotect(_mapping, page, ProtNone) != 0 || LibC.mprotect((nint)(basePtr + ((dataPages + 1) * page)), page, ProtNone) != 0)
            {
                throw new InvalidOperationException("mprotect failed");
            }

            byte* dataStart = basePtr + page;
            byte* dataEnd = basePtr + ((dataPages + 1) * page);
            _start = guardAfter ? (T*)(dataEnd - bytes) : (T*)dataStart;
        }
        else
        {
            _managed = new T[length + (2 * Padding)];
        }
    }

    public int Length { get; }

    public Span<T> Span => _managed is null ? new Span<T>(_start, Length) : _managed.AsSpan(Padding, Length);

    public void Dispose()
    {
        if (_managed is null)
        {
            LibC.munmap(_mapping, _mappingLength);
        }
    }
}

internal static class LibC
{
    [DllImport("libc", SetLastError = true)]
    public static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", SetLastError = true)]
    public static extern int mprotect(nint addr, nuint length, int prot);

    [DllImport("libc", SetLastError = true)]
    public static extern int munmap(nint addr, nuint length);
}
