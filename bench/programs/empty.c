/* Start-up only: subtracted from pair's count so the result is per pair. */
int main(void)
{
	return 0;
}
